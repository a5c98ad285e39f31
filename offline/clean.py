"""Batch cleaning of a line-level log, every step counted for the model card.

Steps, in order: exact duplicate rows, ``A`` adjustment invoices, non-product codes
(:mod:`offline.codes`), zero/negative prices, rows without a customer id (kept for product
statistics, out of customer models), cancellations matched to the orders they cancel (the seed's
method), negative quantities outside cancellations, and extreme outliers (huge orders cancelled
the same day, neutralised by the matching).

The seed's cancellation matching: a cancellation line looks for earlier order lines of the same
customer and stock code; none -> unmatched (dropped); one -> that order is cancelled; several ->
the latest order whose quantity covers the cancelled quantity. The order keeps its row and gets
``quantity_cancelled``; ``net_quantity`` = quantity - quantity_cancelled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from offline.codes import is_product_code

log = logging.getLogger(__name__)

#: an order line at least this large, cancelled the same day, is counted as an extreme outlier
OUTLIER_QUANTITY = 10_000


@dataclass
class CleanLog:
    """Result of :func:`clean_log`."""

    product_rows: pd.DataFrame  #: clean purchase lines incl. guests (product statistics)
    customer_lines: pd.DataFrame  #: clean order lines of known customers, with net_quantity
    counts: dict[str, int] = field(default_factory=dict)


def match_cancellations(orders: pd.DataFrame, cancels: pd.DataFrame) -> tuple[pd.Series, dict]:
    """Quantity cancelled per order row (index of ``orders``), by the seed's matching rule.

    >>> t = pd.Timestamp
    >>> orders = pd.DataFrame({"customer_id": ["1", "1"], "stock_code": ["A", "A"],
    ...     "quantity": [5, 10], "invoiced_at": [t("2010-01-01"), t("2010-01-02")]})
    >>> cancels = pd.DataFrame({"customer_id": ["1", "1"], "stock_code": ["A", "B"],
    ...     "quantity": [-10, -1], "invoiced_at": [t("2010-01-03"), t("2010-01-03")]})
    >>> cancelled, stats = match_cancellations(orders, cancels)
    >>> cancelled.tolist(), stats["cancellations_unmatched"]
    ([0, 10], 1)
    """
    o = orders[["customer_id", "stock_code", "quantity", "invoiced_at"]].copy()
    o["order_row"] = orders.index
    c = cancels[["customer_id", "stock_code", "quantity", "invoiced_at"]].copy()
    c["cancel_row"] = np.arange(len(c))
    m = c.merge(o, on=["customer_id", "stock_code"], suffixes=("_c", "_o"))
    m = m[m["invoiced_at_o"] < m["invoiced_at_c"]]
    n_cand = m.groupby("cancel_row").size()
    m = m.join(n_cand.rename("n_cand"), on="cancel_row")
    covers = m["quantity_o"] >= -m["quantity_c"]
    eligible = m[(m["n_cand"] == 1) | covers]
    chosen = (
        eligible.sort_values(["cancel_row", "invoiced_at_o", "order_row"])
        .drop_duplicates("cancel_row", keep="last")
    )
    cancelled = (
        (-chosen["quantity_c"]).groupby(chosen["order_row"]).sum()
        .reindex(orders.index, fill_value=0)
    )
    cancelled = np.minimum(cancelled, orders["quantity"]).astype("int64")
    same_day = chosen["invoiced_at_o"].dt.date == chosen["invoiced_at_c"].dt.date
    stats = {
        "cancellation_lines": len(c),
        "cancellations_matched": int(chosen["cancel_row"].nunique()),
        "cancellations_unmatched": int(len(c) - chosen["cancel_row"].nunique()),
        "extreme_outliers_cancelled_same_day": int(
            (same_day & (chosen["quantity_o"] >= OUTLIER_QUANTITY)).sum()),
    }
    return cancelled, stats


def clean_log(df: pd.DataFrame) -> CleanLog:
    """Clean a normalised log (:func:`offline.load.read_log`); see the module docstring."""
    counts: dict[str, int] = {"rows_in": len(df)}
    dup = df.duplicated()
    counts["exact_duplicates"] = int(dup.sum())
    d = df[~dup]
    inv = d["invoice_id"].str.upper()
    adj = inv.str.startswith("A")
    counts["adjustment_rows"] = int(adj.sum())
    d = d[~adj]
    product = d["stock_code"].map(is_product_code).astype(bool)
    counts["non_product_rows"] = int((~product).sum())
    d = d[product]
    bad_price = d["unit_price"] <= 0
    counts["zero_or_negative_price_rows"] = int(bad_price.sum())
    d = d[~bad_price]
    is_cancel = d["invoice_id"].str.upper().str.startswith("C")
    product_rows = d[~is_cancel & (d["quantity"] > 0)]
    no_cust = d["customer_id"].isna()
    counts["rows_without_customer"] = int(no_cust.sum())
    d = d[~no_cust]
    is_cancel = is_cancel[~no_cust]
    neg_other = ~is_cancel & (d["quantity"] <= 0)
    counts["nonpositive_quantity_outside_cancellations"] = int(neg_other.sum())
    cancels = d[is_cancel & (d["quantity"] < 0)]
    orders = d[~is_cancel & (d["quantity"] > 0)].copy()
    cancelled, stats = match_cancellations(orders, cancels)
    counts.update(stats)
    orders["quantity_cancelled"] = cancelled
    orders["net_quantity"] = orders["quantity"] - cancelled
    counts["order_lines_fully_cancelled"] = int((orders["net_quantity"] == 0).sum())
    counts["customer_order_lines"] = len(orders)
    counts["product_rows"] = len(product_rows)
    counts["customers"] = int(orders["customer_id"].nunique())
    log.info("event=clean %s", " ".join(f"{k}={v}" for k, v in counts.items()))
    return CleanLog(product_rows=product_rows, customer_lines=orders, counts=counts)
