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


class HashedCategories:
    """Four categories by code, reference prices for some codes (a stand-in categoriser)."""

    n_categories_ = 4

    def category_of(self, code: str, description: str | None, unit_price: float | None = None):
        return sum(map(ord, code)) % 4

    def reference_price(self, code: str) -> float | None:
        return None if code.endswith("A") else 0.5 + len(code)


def plain_features(ev: InvoiceEvent, categoriser: HashedCategories) -> dict[str, float]:
    """The features written as their definitions, one aggregate at a time."""
    import math
    from statistics import median

    from offline.codes import is_postage_code, is_product_code
    from offline.events import product_lines
    from offline.features import EUROPE

    lines = product_lines(ev)
    values = [ln.quantity * ln.unit_price for ln in lines]
    pos = [(ln, v) for ln, v in zip(lines, values, strict=True) if ln.quantity > 0]
    pos_value = sum(v for _, v in pos)
    shares = [0.0] * categoriser.n_categories_
    for ln, v in pos:
        shares[categoriser.category_of(ln.stock_code, ln.description, ln.unit_price)] += v
    n_cats = sum(s > 0 for s in shares)
    if pos_value > 0:
        shares = [s / pos_value for s in shares]
    ratio = 0.0
    for ln, v in pos:
        ref = categoriser.reference_price(ln.stock_code)
        ratio += v * (ln.unit_price / ref if ref else 1.0)
    prices = [ln.unit_price for ln, _ in pos] or [0.0]
    qtys = [float(ln.quantity) for ln, _ in pos] or [0.0]
    when, country = ev.invoiced_at, (ev.country or "").strip()
    total = float(sum(values))
    f = {
        "basket_value": total, "log_basket_value": math.log1p(max(total, 0.0)),
        "n_lines": float(len(lines)), "n_products": float(len({ln.stock_code for ln in lines})),
        "log_quantity": math.log1p(sum(qtys)), "mean_unit_price": sum(prices) / len(prices),
        "max_unit_price": max(prices), "min_unit_price": min(prices),
        "median_line_quantity": median(qtys), "max_line_quantity": max(qtys),
        "max_line_value": max(values, default=0.0),
        "share_lines_qty12": sum(q >= 12 for q in qtys) / len(qtys) if pos else 0.0,
        "n_negative_lines": float(sum(ln.quantity < 0 for ln in lines)),
        "n_nonproduct_lines": float(sum(not is_product_code(ln.stock_code) for ln in ev.lines)),
        "has_postage": float(any(is_postage_code(ln.stock_code) for ln in ev.lines)),
        "hour": float(when.hour) + when.minute / 60.0, "weekday": float(when.weekday()),
        "month": float(when.month),
        "days_to_christmas": float((datetime(when.year, 12, 25).date() - when.date()).days % 365),
        "is_uk": float(country == "United Kingdom"), "is_europe": float(country in EUROPE),
        "price_ratio": ratio / pos_value if pos_value > 0 else 1.0,
        "n_basket_categories": float(n_cats),
    }
    f.update({f"cat_share_{c}": float(s) for c, s in enumerate(shares)})
    return f


def test_features_equal_their_definitions_on_every_invoice_of_the_log(
        log_events: list) -> None:
    """The one-pass function reads exactly what the plain definitions say, bit for bit, on every
    invoice of the shipped log (first purchases or not, cancellations included)."""
    categoriser = HashedCategories()
    assert len(log_events) > 30_000
    for ev in log_events:
        assert first_purchase_features(ev, categoriser) == plain_features(ev, categoriser), \
            ev.invoice_id


class HashedCategoriesWithTable(HashedCategories):
    """The same categoriser, offering `known_products` for about half of the codes (the fast
    lookup the fitted `ProductCategoriser` offers); the other codes go through the calls."""

    def __init__(self, codes: set[str]) -> None:
        self.known_products = {c: (self.category_of(c, None), self.reference_price(c))
                               for c in sorted(codes)[::2]}


def test_features_read_through_the_known_products_table_equal_their_definitions(
        log_events: list) -> None:
    from offline.codes import is_product_code

    codes = {ln.stock_code for ev in log_events for ln in ev.lines
             if is_product_code(ln.stock_code)}
    categoriser = HashedCategoriesWithTable(codes)
    assert 1_000 < len(categoriser.known_products) < len(codes)
    for ev in log_events:
        assert first_purchase_features(ev, categoriser) == plain_features(ev, categoriser), \
            ev.invoice_id
