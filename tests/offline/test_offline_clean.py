from __future__ import annotations

import pandas as pd

from offline.clean import clean_log, match_cancellations
from offline.codes import is_product_code
from offline.load import normalise


def test_special_codes() -> None:
    for code in ["POST", "DOT", "M", "D", "C2", "BANK CHARGES", "PADS", "AMAZONFEE", "ADJUST",
                 "ADJUST2", "TEST001", "B", "S", "gift_0001_10", "CRUK"]:
        assert not is_product_code(code), code
    for code in ["85123A", "22138", "79323P", "POSTCARD1", "DCGS"[:2]]:
        assert is_product_code(code), code


def test_cancellation_matching_rules() -> None:
    t = pd.Timestamp
    orders = pd.DataFrame({
        "customer_id": ["1", "1", "1", "2"],
        "stock_code": ["A", "A", "B", "A"],
        "quantity": [10, 2, 5, 4],
        "invoiced_at": [t("2010-01-01"), t("2010-01-02"), t("2010-01-01"), t("2010-01-01")],
    })
    cancels = pd.DataFrame({
        "customer_id": ["1", "1", "2", "3"],
        "stock_code": ["A", "B", "A", "A"],
        "quantity": [-5, -5, -4, -1],
        "invoiced_at": [t("2010-01-03"), t("2010-01-03"), t("2009-12-01"), t("2010-01-03")],
    })
    cancelled, stats = match_cancellations(orders, cancels)
    # several candidates: the latest order that covers the quantity (the 10, not the later 2)
    assert cancelled.tolist() == [5, 0, 5, 0]
    # a cancellation before any order and one of an unknown customer are unmatched
    assert stats["cancellations_matched"] == 2
    assert stats["cancellations_unmatched"] == 2


def test_clean_counts_every_step(tiny_raw: pd.DataFrame) -> None:
    c = clean_log(normalise(tiny_raw))
    n = c.counts
    assert n["rows_in"] == 9
    assert n["exact_duplicates"] == 1
    assert n["adjustment_rows"] == 1
    assert n["non_product_rows"] == 2
    assert n["rows_without_customer"] == 1
    assert n["cancellations_matched"] == 1
    assert n["order_lines_fully_cancelled"] == 1
    # the guest's row still counts for product statistics
    assert "21232" in set(c.product_rows["stock_code"])
    assert c.customer_lines["customer_id"].notna().all()
