"""First-purchase features: ONE function over ONE invoice, used by training and by scoring.

Nothing but the invoice goes in (its lines, country and timestamp) and the fitted product
categoriser, so the stream computes exactly what the training saw and nothing after the first
purchase can leak in.

>>> from datetime import datetime
>>> from schemas.invoice import InvoiceEvent, InvoiceLine
>>> class OneCategory:
...     n_categories_ = 1
...     def category_of(self, code, description, unit_price=None): return 0
...     def reference_price(self, code): return 2.0
>>> ev = InvoiceEvent(invoice_id="1", customer_id="7", country="France",
...     invoiced_at=datetime(2010, 12, 1, 9),
...     lines=(InvoiceLine(stock_code="22138", quantity=12, unit_price=2.5),
...            InvoiceLine(stock_code="POST", quantity=1, unit_price=18.0)))
>>> f = first_purchase_features(ev, OneCategory())
>>> f["basket_value"], f["has_postage"], f["is_uk"], f["cat_share_0"]
(30.0, 1.0, 0.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from operator import itemgetter
from statistics import median
from typing import Any, Protocol

import numpy as np
import pandas as pd

from offline.codes import is_postage_code, is_product_code
from schemas.invoice import InvoiceEvent

#: Europe outside the UK (the retailer's second market), by the names the UCI logs use
EUROPE = frozenset({
    "Austria", "Belgium", "Channel Islands", "Cyprus", "Czech Republic", "Denmark", "EIRE",
    "Finland", "France", "Germany", "Greece", "Iceland", "Italy", "Lithuania", "Malta",
    "Netherlands", "Norway", "Poland", "Portugal", "Spain", "Sweden", "Switzerland",
    "European Community",
})


class Categoriser(Protocol):
    n_categories_: int

    def category_of(self, stock_code: str, description: str | None,
                    unit_price: float | None = None) -> int: ...

    def reference_price(self, stock_code: str) -> float | None: ...


BASE_FEATURES = (
    "basket_value", "log_basket_value", "n_lines", "n_products", "log_quantity",
    "mean_unit_price", "max_unit_price", "min_unit_price", "median_line_quantity",
    "max_line_quantity", "max_line_value", "share_lines_qty12", "n_negative_lines",
    "n_nonproduct_lines", "has_postage", "hour", "weekday", "month", "days_to_christmas",
    "is_uk", "is_europe", "price_ratio", "n_basket_categories",
)


def feature_names(n_categories: int) -> list[str]:
    """Column order of the feature frame."""
    return [*BASE_FEATURES, *(f"cat_share_{c}" for c in range(n_categories))]


def first_purchase_features(ev: InvoiceEvent, categoriser: Categoriser) -> dict[str, float]:
    """Features of a first purchase, from that invoice alone (see module docstring).

    ONE pass over the invoice's lines: the clean ones (`offline.events.product_lines`: a
    product code, price > 0, a repeated line once) feed the basket figures, the others only the
    non-product count and the postage flag. The stream computes this for every new customer,
    so it is written for speed; sums run in line order, as `sum()` over the clean lines would
    (tests/offline/test_offline_features.py checks every invoice of the shipped log against
    the plain definitions).
    """
    category_of, reference_price = categoriser.category_of, categoriser.reference_price
    # (category, reference price) of known product codes in one lookup, if the categoriser
    # offers them (`known_products`: product codes only, whose category depends on neither
    # description nor price): the same values as the two calls, ~1/3 of this function's time
    known = getattr(categoriser, "known_products", None)
    product = known.get if known is not None else _no_product
    n_cat = int(categoriser.n_categories_)
    shares = [0.0] * n_cat
    total: float = 0  # all clean lines (returns subtract)
    pos_value: float = 0  # lines with a positive quantity
    ratio_num = 0.0
    max_value: float | None = None
    n_negative = n_clean = n_nonproduct = 0
    postage = False
    prices: list[float] = []
    qtys: list[float] = []
    codes = set()
    seen: set[tuple[str, str | None, int, float]] = set()
    for ln in ev.lines:
        code = ln.stock_code
        info = product(code)
        if info is None and not is_product_code(code):
            n_nonproduct += 1
            postage = postage or is_postage_code(code)
            continue
        quantity, price = ln.quantity, ln.unit_price
        if price <= 0:
            continue
        key = (code, ln.description, quantity, price)
        if key in seen:
            continue
        seen.add(key)
        n_clean += 1
        value = quantity * price
        total += value
        if max_value is None or value > max_value:
            max_value = value
        codes.add(code)
        if quantity < 0:
            n_negative += 1
        elif quantity > 0:
            prices.append(price)
            qtys.append(float(quantity))
            pos_value += value
            if info is None:
                cat, ref = category_of(code, ln.description, price), reference_price(code)
            else:
                cat, ref = info
            shares[cat] += value
            ratio_num += value * (price / ref if ref else 1.0)
    n_basket_categories = sum(s > 0 for s in shares)
    if pos_value > 0:
        shares = [s / pos_value for s in shares]
    has_pos = bool(prices)
    prices = prices or [0.0]
    qtys = qtys or [0.0]
    when = ev.invoiced_at
    country = (ev.country or "").strip()
    f: dict[str, float] = {
        "basket_value": float(total),
        "log_basket_value": math.log1p(max(total, 0.0)),
        "n_lines": float(n_clean),
        "n_products": float(len(codes)),
        "log_quantity": math.log1p(sum(qtys)),
        "mean_unit_price": sum(prices) / len(prices),
        "max_unit_price": max(prices),
        "min_unit_price": min(prices),
        "median_line_quantity": median(qtys),
        "max_line_quantity": max(qtys),
        "max_line_value": 0.0 if max_value is None else max_value,
        "share_lines_qty12": sum(q >= 12 for q in qtys) / len(qtys) if has_pos else 0.0,
        "n_negative_lines": float(n_negative),
        "n_nonproduct_lines": float(n_nonproduct),
        "has_postage": float(postage),
        "hour": float(when.hour) + when.minute / 60.0,
        "weekday": float(when.weekday()),
        "month": float(when.month),
        "days_to_christmas": float((date(when.year, 12, 25) - when.date()).days % 365),
        "is_uk": float(country == "United Kingdom"),
        "is_europe": float(country in EUROPE),
        "price_ratio": ratio_num / pos_value if pos_value > 0 else 1.0,
        "n_basket_categories": float(n_basket_categories),
    }
    for c, s in enumerate(shares):
        f[f"cat_share_{c}"] = float(s)
    return f


def _no_product(code: str) -> None:
    return None


def features_frame(events: Sequence[InvoiceEvent], categoriser: Categoriser) -> pd.DataFrame:
    """:func:`first_purchase_features` of each event, one row per event, in order."""
    cols = feature_names(int(categoriser.n_categories_))
    row = itemgetter(*cols)  # a matrix from the dicts: a frame from records cost ~5 us a row
    values = np.array([row(first_purchase_features(ev, categoriser)) for ev in events],
                      dtype=float).reshape(len(events), len(cols))
    # plain Python strings: pandas' default Arrow-backed names took ~20 us per column check
    # (`has_columns`), ten of them per scored batch
    return pd.DataFrame(values, columns=pd.Index(cols, dtype=object))


def has_columns(frame: Any, columns: Sequence[str]) -> bool:
    """Whether `frame` is a data frame with exactly these columns, in this order."""
    names = getattr(frame, "columns", None)
    if names is None or len(names) != len(columns):
        return False
    return (names.tolist() if hasattr(names, "tolist") else list(names)) == list(columns)


def select_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`frame[columns]`, or `frame` itself when it has exactly these columns in this order
    (a pandas selection copies every column: ~0.3 ms a call, several calls per scored batch).

    >>> f = pd.DataFrame({"a": [1.0], "b": [2.0]})
    >>> select_columns(f, ["a", "b"]) is f, list(select_columns(f, ["b"]).columns)
    (True, ['b'])
    """
    return frame if has_columns(frame, columns) else frame[list(columns)]


def frame_values(frame: Any, columns: Sequence[str]) -> np.ndarray | None:
    """A data frame's values as float64 when it has exactly `columns`, in order, and at least
    one row: what a fitted model may read without scikit-learn's per-call checks (they cost
    more than the model on a few rows). None for anything else, which takes the full checks.

    >>> frame_values(pd.DataFrame({"a": [1], "b": [2.5]}), ["a", "b"]).tolist()
    [[1.0, 2.5]]
    >>> frame_values(pd.DataFrame({"b": [2.5], "a": [1]}), ["a", "b"]) is None
    True
    """
    if not has_columns(frame, columns) or not len(frame):
        return None
    try:
        return frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        return None
