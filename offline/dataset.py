"""The per-customer training table: first-purchase features, next-year labels, cohort, split."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import pandas as pd

from offline.events import first_purchases
from offline.features import Categoriser, features_frame
from offline.labels import cohort_mask, invoice_table, is_holdout, outcomes, purchase_history
from schemas.invoice import InvoiceEvent

#: the columns of ``CustomerTable.history`` besides the features
HISTORY_META = ("customer_id", "invoice_id", "invoiced_at", "prior_orders", "observed_share",
                "repeat", "holdout")


@dataclass
class CustomerTable:
    """One row per customer with a first purchase (index aligned across frames)."""

    ids: pd.DataFrame  #: customer_id, invoice_id, first_purchase_at, in_cohort, holdout
    features: pd.DataFrame  #: first-purchase features
    labels: pd.DataFrame  #: orders, spend, repeat
    #: the repeat classifier's extra rows (see :func:`repeat_history`)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)


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
    history = repeat_history(events, inv, ids, categoriser, horizon_days, start, end)
    return CustomerTable(ids=ids, features=feats, labels=labels, history=history)


def repeat_history(events: Sequence[InvoiceEvent], invoices: pd.DataFrame, ids: pd.DataFrame,
                   categoriser: Categoriser, horizon_days: int, log_start: object,
                   log_end: object) -> pd.DataFrame:
    """Purchase invoices beyond the cohort's first purchases, as extra repeat-classifier rows.

    Every purchase invoice of :func:`offline.labels.purchase_history` (followed >= 30 days)
    except the cohort's first purchases (the main table's rows) and the first invoices of
    customers first seen in the warm-up (likely older customers, not new ones): later invoices
    (``prior_orders`` >= 1) and first purchases too late for a full horizon (``observed_share``
    < 1). Columns: :data:`HISTORY_META` then the features of each invoice (same function as
    the first purchase's). ``holdout`` marks the held-out customers, who must never be fitted.
    """
    h = purchase_history(invoices, horizon_days, log_end)
    new = cohort_mask(ids["first_purchase_at"], log_start, log_end, 0)
    first_ok = dict(zip(ids["invoice_id"], new & ~ids["in_cohort"], strict=True))
    first = h["prior_orders"] == 0
    keep = ~first | h["invoice_id"].map(first_ok).fillna(False).astype(bool)
    h = h[keep].reset_index(drop=True)
    h["holdout"] = h["customer_id"].map(dict(zip(ids["customer_id"], ids["holdout"],
                                                 strict=True))).astype(bool)
    by_id = {ev.invoice_id: ev for ev in events}
    feats = features_frame([by_id[i] for i in h["invoice_id"]], categoriser)
    return pd.concat([h[list(HISTORY_META)], feats], axis=1)


def fit_history(table: CustomerTable, exclude: Collection[str] = ()) -> pd.DataFrame:
    """The history rows a fit may use: never a held-out customer's, nor any in ``exclude``."""
    h = table.history
    if h.empty:
        return h
    return h[~h["holdout"] & ~h["customer_id"].isin(set(exclude))].reset_index(drop=True)
