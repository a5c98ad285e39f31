"""First purchases, the forecast cohort, next-year labels and the customer split.

Definitions are those of ``docs/evaluation.md``: labels over (first purchase, first purchase +
horizon]; ``orders`` = distinct purchase invoices, ``spend`` = net value of purchases and
cancellations (clean product lines; adjustments ignored) floored at 0, ``repeat`` = orders >= 1.

>>> is_holdout("17850", seed=0) in (True, False)
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import pandas as pd

from offline.events import clean_total, counts_toward_spend, is_first_purchase_candidate
from schemas.invoice import InvoiceEvent

HOLDOUT_SHARE = 0.2
COHORT_WARMUP_DAYS = 90


def is_holdout(customer_id: str, seed: int = 0, share: float = HOLDOUT_SHARE) -> bool:
    """The customer split: a seeded hash of the id; ``share`` of customers are held out."""
    h = hashlib.sha256(f"{seed}:{customer_id}".encode()).hexdigest()
    return int(h[:8], 16) / 2**32 < share


def realised_outcome(first: InvoiceEvent, later: Iterable[InvoiceEvent],
                     horizon_days: int = 365) -> tuple[int, float]:
    """(orders, spend) of a customer over (first purchase, + horizon], from their invoices.

    ``later`` may contain any of the customer's invoices; those outside the window are ignored.
    The reference definition: `outcomes` is its vectorised form, and the stream's Redis labels
    (h_orders, h_spend) are proven equal to it by the learner and e2e tests.
    """
    start = (first.invoiced_at, first.invoice_id)
    end = first.invoiced_at + timedelta(days=horizon_days)
    orders, spend = 0, 0.0
    for ev in later:
        if (ev.invoiced_at, ev.invoice_id) <= start or ev.invoiced_at > end:
            continue
        if not counts_toward_spend(ev):
            continue
        if is_first_purchase_candidate(ev):
            orders += 1
        spend += clean_total(ev)
    return orders, max(spend, 0.0)


def invoice_table(events: Sequence[InvoiceEvent]) -> pd.DataFrame:
    """One row per customer invoice: customer_id, invoice_id, invoiced_at, purchase, value."""
    rows = [
        (ev.customer_id, ev.invoice_id, ev.invoiced_at, is_first_purchase_candidate(ev),
         counts_toward_spend(ev), clean_total(ev))
        for ev in events if ev.customer_id is not None
    ]
    return pd.DataFrame(rows, columns=["customer_id", "invoice_id", "invoiced_at", "purchase",
                                       "counts", "value"])


def outcomes(invoices: pd.DataFrame, first: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """Labels per customer (vectorised :func:`realised_outcome`).

    ``first``: customer_id, invoice_id, invoiced_at of each first purchase.
    """
    f = first[["customer_id", "invoice_id", "invoiced_at"]].rename(
        columns={"invoice_id": "fp_id", "invoiced_at": "fp_at"})
    m = invoices[invoices["counts"]].merge(f, on="customer_id")
    after = (m["invoiced_at"] > m["fp_at"]) | (
        (m["invoiced_at"] == m["fp_at"]) & (m["invoice_id"] > m["fp_id"]))
    within = m["invoiced_at"] <= m["fp_at"] + pd.Timedelta(days=horizon_days)
    w = m[after & within]
    g = w.groupby("customer_id")
    out = pd.DataFrame({
        "orders": g["purchase"].sum().astype("int64"),
        "spend": g["value"].sum().clip(lower=0.0),
    }).reindex(f["customer_id"]).fillna({"orders": 0, "spend": 0.0})
    out["orders"] = out["orders"].astype("int64")
    out["repeat"] = (out["orders"] >= 1).astype("int64")
    return out


def cohort_mask(first_at: pd.Series, log_start: datetime, log_end: datetime,
                horizon_days: int) -> pd.Series:
    """Customers first seen >= 90 days after the log starts and >= horizon before it ends."""
    return (first_at >= pd.Timestamp(log_start) + pd.Timedelta(days=COHORT_WARMUP_DAYS)) & (
        first_at + pd.Timedelta(days=horizon_days) <= pd.Timestamp(log_end))


#: the shortest follow-up for an invoice to teach the repeat classifier anything
MIN_OBSERVED_DAYS = 30


def purchase_history(invoices: pd.DataFrame, horizon_days: int, log_end: datetime,
                     min_observed_days: int = MIN_OBSERVED_DAYS) -> pd.DataFrame:
    """Every purchase invoice with whether the customer bought again within the follow-up seen.

    One row per purchase invoice of ``invoices`` (an :func:`invoice_table`, sorted by
    ``(invoiced_at, invoice_id)``) followed for at least ``min_observed_days`` before the log
    ends: customer_id, invoice_id, invoiced_at, ``prior_orders`` (the customer's earlier purchase
    invoices in the log), ``observed_share`` = min(1, days until the log ends / horizon) and
    ``repeat`` = another purchase invoice within (invoice, invoice + observed_share x horizon].
    A cohort customer's first purchase (prior_orders 0, share 1) has the cohort's ``repeat``
    label; later invoices and customers first seen too late for a full horizon ("censored")
    widen what the repeat classifier learns from.

    >>> inv = pd.DataFrame({"customer_id": ["a", "a", "b"], "invoice_id": ["1", "2", "3"],
    ...     "invoiced_at": pd.to_datetime(["2010-01-01", "2010-03-01", "2010-06-01"]),
    ...     "purchase": True, "counts": True, "value": 1.0})
    >>> h = purchase_history(inv, 365, datetime(2010, 12, 31))
    >>> h[["invoice_id", "prior_orders", "repeat"]].values.tolist()
    [['1', 0, 1], ['2', 1, 0], ['3', 0, 0]]
    >>> round(float(h["observed_share"].iloc[2]), 3)
    0.584
    """
    p = invoices[invoices["purchase"] & invoices["counts"]]
    p = p[["customer_id", "invoice_id", "invoiced_at"]].reset_index(drop=True)
    g = p.groupby("customer_id", sort=False)
    p["prior_orders"] = g.cumcount().astype("int64")
    nxt = g["invoiced_at"].shift(-1)
    observed = (pd.Timestamp(log_end) - p["invoiced_at"]).dt.total_seconds() / 86400
    p["observed_share"] = (observed / horizon_days).clip(upper=1.0)
    gap = (nxt - p["invoiced_at"]).dt.total_seconds() / 86400
    p["repeat"] = (gap.notna() & (gap <= observed.clip(upper=horizon_days))).astype("int64")
    return p[observed >= min_observed_days].reset_index(drop=True)
