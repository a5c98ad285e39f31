"""The per-customer training table: first-purchase features, next-year labels, cohort, split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from offline.events import first_purchases
from offline.features import Categoriser, features_frame
from offline.labels import cohort_mask, invoice_table, is_holdout, outcomes
from schemas.invoice import InvoiceEvent


@dataclass
class CustomerTable:
    """One row per customer with a first purchase (index aligned across frames)."""

    ids: pd.DataFrame  #: customer_id, invoice_id, first_purchase_at, in_cohort, holdout
    features: pd.DataFrame  #: first-purchase features
    labels: pd.DataFrame  #: orders, spend, repeat


def build_customer_table(events: Sequence[InvoiceEvent], categoriser: Categoriser,
                         horizon_days: int, seed: int = 0) -> CustomerTable:
    """Build the table from the log's events (sorted by ``(invoiced_at, invoice_id)``)."""
    first = first_purchases(events)
    fevents = list(first.values())
    ids = pd.DataFrame({
        "customer_id": [e.customer_id for e in fevents],
        "invoice_id": [e.invoice_id for e in fevents],
        "first_purchase_at": pd.to_datetime([e.invoiced_at for e in fevents]),
    })
    start = min(e.invoiced_at for e in events)
    end = max(e.invoiced_at for e in events)
    ids["in_cohort"] = cohort_mask(ids["first_purchase_at"], start, end, horizon_days)
    ids["holdout"] = ids["customer_id"].map(lambda c: is_holdout(c, seed)).astype(bool)
    inv = invoice_table(events)
    labels = outcomes(
        inv, ids.rename(columns={"first_purchase_at": "invoiced_at"}), horizon_days
    ).reset_index(drop=True)
    feats = features_frame(fevents, categoriser)
    return CustomerTable(ids=ids, features=feats, labels=labels)
