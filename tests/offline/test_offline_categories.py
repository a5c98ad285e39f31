from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from offline.categories import ProductCategoriser, candidate_ks, price_band_matrix
from offline.text import keywords


def _products(with_descriptions: bool = True) -> pd.DataFrame:
    descs = ["JUMBO BAG RED RETROSPOT", "LUNCH BAG SPACEBOY", "TEA CUP AND SAUCER",
             "MUG CHRISTMAS TREE", "GREETING CARD ROBIN", "CHRISTMAS CARD SNOWMAN"] * 6
    return pd.DataFrame({
        "stock_code": [f"P{i:03d}" for i in range(len(descs))],
        "description": descs if with_descriptions else [None] * len(descs),
        "unit_price": np.tile([1.95, 1.65, 2.95, 1.25, 0.42, 0.55], 6) * np.repeat(
            [1, 1.1, 0.9, 1, 1.2, 0.8], 6),
    })


def test_keywords_are_stemmed_nouns() -> None:
    assert keywords("JUMBO BAG RED RETROSPOT") == ["bag", "retrospot"]
    assert keywords(None) == []


def test_known_and_unseen_codes() -> None:
    cat = ProductCategoriser(k_range=(2, 4), min_count=3).fit(_products())
    assert 2 <= cat.k_ <= 4
    assert cat.category_of("P000", None) == cat.code_category_["P000"]
    assert cat.category_of("NEW", "JUMBO BAG PINK", 1.95) == cat.category_of("P000", None)
    assert cat.reference_price("P000") == 1.95 and cat.reference_price("NEW") is None
    assert len(cat.category_names()) == cat.k_
    # the features' one-lookup table says what the two calls say, and is not pickled
    assert cat.known_products["P000"] == (cat.category_of("P000", None), 1.95)
    assert set(cat.known_products) == set(cat.code_category_)
    assert "_known_products" not in pickle.loads(pickle.dumps(cat)).__dict__


def test_no_descriptions_falls_back_to_price_bands() -> None:
    cat = ProductCategoriser(k_range=(2, 6), min_count=3).fit(_products(False))
    assert cat.keywords_ == []
    assert 0 <= cat.category_of("NEW", "ANYTHING", 9.0) < cat.k_


def test_candidate_ks_respect_distinct_rows() -> None:
    x = price_band_matrix(np.array([0.5, 1.5, 1.5, 2.5]))
    assert candidate_ks((2, 10), x) == [2, 3]
    assert candidate_ks((3, 10), x[:2]) == []
