from __future__ import annotations

from datetime import datetime

from offline.features import feature_names, first_purchase_features
from schemas.invoice import InvoiceEvent, InvoiceLine


class TwoCategories:
    n_categories_ = 2

    def category_of(self, code: str, description: str | None, unit_price: float | None = None):
        return 0 if code.startswith("2") else 1

    def reference_price(self, code: str) -> float | None:
        return {"22138": 2.5}.get(code)


def test_features_of_one_invoice() -> None:
    ev = InvoiceEvent(
        invoice_id="1", customer_id="7", country="Germany",
        invoiced_at=datetime(2010, 12, 6, 14, 30),
        lines=(InvoiceLine(stock_code="22138", quantity=12, unit_price=2.0),
               InvoiceLine(stock_code="22138", quantity=12, unit_price=2.0),  # duplicate line
               InvoiceLine(stock_code="85123A", quantity=1, unit_price=8.0),
               InvoiceLine(stock_code="POST", quantity=1, unit_price=18.0),
               InvoiceLine(stock_code="10002", quantity=1, unit_price=0.0)))
    f = first_purchase_features(ev, TwoCategories())
    assert list(f) == feature_names(2)
    assert f["basket_value"] == 32.0
    assert f["n_lines"] == 2
    assert f["has_postage"] == 1.0 and f["n_nonproduct_lines"] == 1
    assert f["is_europe"] == 1.0 and f["is_uk"] == 0.0
    assert f["weekday"] == 0 and f["month"] == 12 and f["hour"] == 14.5
    assert f["cat_share_0"] == 0.75 and f["cat_share_1"] == 0.25
    assert f["price_ratio"] == (24 * 0.8 + 8 * 1.0) / 32
    assert f["n_basket_categories"] == 2
    assert f["days_to_christmas"] == 19
    assert all(isinstance(v, float) for v in f.values())
