"""Product categories from descriptions: keyword x product matrix plus price bands, k-means.

The seed's method: noun-like stemmed keywords (:mod:`offline.text`) that occur in at least
``min_count`` products, a binary product x keyword matrix, one-hot price bands, k-means with k
chosen by silhouette. A stock code unseen at fit time is categorised from its description (and
its unit price when known), so scoring never fails on a new product.

>>> import pandas as pd
>>> products = pd.DataFrame({
...     "stock_code": [f"{i}" for i in range(40)],
...     "description": ["RED BAG"] * 20 + ["TEA MUG"] * 20,
...     "unit_price": [1.0] * 20 + [4.0] * 20})
>>> cat = ProductCategoriser(k_range=(2, 2), min_count=2).fit(products)
>>> cat.category_of("0", None) == cat.category_of("NEW", "LARGE BAG", 1.0)
True
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import silhouette_score

from offline.codes import is_product_code
from offline.text import keyword_analyzer

log = logging.getLogger(__name__)

#: the seed's price bands (GBP)
PRICE_BANDS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, np.inf)


def price_band_matrix(prices: np.ndarray) -> np.ndarray:
    """One-hot price bands; an unknown (NaN) price gives an all-zero row."""
    prices = np.asarray(prices, dtype=float)
    idx = np.digitize(prices, PRICE_BANDS[1:-1])
    out = np.zeros((len(prices), len(PRICE_BANDS) - 1))
    ok = ~np.isnan(prices)
    out[np.flatnonzero(ok), idx[ok]] = 1.0
    return out


def candidate_ks(k_range: tuple[int, int], x: np.ndarray) -> list[int]:
    """The k's to try: ``k_range`` clipped to what k-means and silhouette allow
    (2 <= k <= distinct rows, k < rows)."""
    distinct = len(np.unique(np.asarray(x), axis=0))
    lo, hi = max(2, k_range[0]), min(k_range[1], distinct, len(x) - 1)
    return list(range(lo, hi + 1))


def product_table(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per stock code: its most frequent description and median unit price."""
    d = lines[lines["description"].notna()]
    desc = (
        d.groupby(["stock_code", "description"], observed=True).size().rename("n").reset_index()
        .sort_values(["stock_code", "n", "description"], ascending=[True, False, True])
        .drop_duplicates("stock_code")
        .set_index("stock_code")["description"]
    )
    price = lines.groupby("stock_code", observed=True)["unit_price"].median()
    out = pd.DataFrame({"unit_price": price}).join(desc, how="left").reset_index()
    return out[["stock_code", "description", "unit_price"]].sort_values("stock_code")


class ProductCategoriser(BaseEstimator):
    """k-means over product keywords and price bands; `category_of` for any (code, description).

    Parameters
    ----------
    k_range : (low, high) inclusive range of k tried; the best silhouette wins.
    min_count : a keyword is kept if at least this many products use it.
    random_state : seed of k-means.
    """

    def __init__(self, k_range: tuple[int, int] = (3, 10), min_count: int = 13,
                 random_state: int = 0) -> None:
        self.k_range = k_range
        self.min_count = min_count
        self.random_state = random_state

    def _matrix(self, descriptions: list[str], prices: np.ndarray) -> np.ndarray:
        if self.vectorizer_ is None:  # no usable keyword at fit time: price bands only
            words = np.zeros((len(descriptions), 0))
        else:
            words = self.vectorizer_.transform([d or "" for d in descriptions]).toarray()
        return np.hstack([words.astype(float), price_band_matrix(prices)])

    def fit(self, products: pd.DataFrame) -> ProductCategoriser:
        """Fit on a product table (:func:`product_table`)."""
        for cached in ("_cache", "_known_products"):  # built from the previous fit, if any
            self.__dict__.pop(cached, None)
        products = products.reset_index(drop=True)
        descs = products["description"].fillna("").astype(str).tolist()
        counter = CountVectorizer(analyzer=keyword_analyzer, binary=True)
        try:
            counts = np.asarray(counter.fit_transform(descs).sum(axis=0)).ravel()
            vocab = sorted(w for w, i in counter.vocabulary_.items()
                           if counts[i] >= self.min_count)
        except ValueError:  # no description has a keyword
            vocab = []
        self.vectorizer_ = (CountVectorizer(analyzer=keyword_analyzer, binary=True,
                                            vocabulary=vocab) if vocab else None)
        self.keywords_ = vocab
        x = self._matrix(descs, products["unit_price"].to_numpy(dtype=float))
        self.silhouette_: dict[int, float] = {}
        self.inertia_: dict[int, float] = {}
        models: dict[int, KMeans] = {}
        sample = min(len(x), 4000)
        for k in candidate_ks(self.k_range, x):
            km = KMeans(n_clusters=k, n_init=5, random_state=self.random_state).fit(x)
            models[k] = km
            self.inertia_[k] = float(km.inertia_)
            self.silhouette_[k] = float(silhouette_score(
                x, km.labels_, sample_size=sample, random_state=self.random_state))
        if models:
            self.k_ = max(self.silhouette_, key=lambda k: (round(self.silhouette_[k], 3), -k))
            self.kmeans_ = models[self.k_]
        else:  # too few distinct products to cluster: one category
            self.k_ = 1
            self.kmeans_ = KMeans(n_clusters=1, n_init=1, random_state=self.random_state).fit(x)
        self.n_categories_ = int(self.k_)
        labels = self.kmeans_.labels_
        self.code_category_: dict[str, int] = dict(
            zip(products["stock_code"].astype(str), labels.astype(int).tolist(), strict=True))
        self.reference_price_: dict[str, float] = dict(
            zip(products["stock_code"].astype(str),
                products["unit_price"].astype(float).tolist(), strict=True))
        self.category_keywords_ = self._top_keywords(x[:, : len(vocab)], labels)
        self.category_sizes_ = np.bincount(labels, minlength=self.k_).tolist()
        log.info("event=categories k=%d silhouette=%.3f keywords=%d products=%d",
                 self.k_, self.silhouette_.get(self.k_, float("nan")), len(vocab), len(products))
        return self

    def _top_keywords(self, words: np.ndarray, labels: np.ndarray, n: int = 8) -> list[list[str]]:
        overall = words.mean(axis=0) + 1e-9
        out = []
        for c in range(self.k_):
            inside = words[labels == c].mean(axis=0) if (labels == c).any() else overall * 0
            score = inside * np.log1p(inside / overall)
            top = np.argsort(-score, kind="stable")[:n]
            out.append([self.keywords_[i] for i in top if inside[i] > 0])
        return out

    def category_of(self, stock_code: str, description: str | None,
                    unit_price: float | None = None) -> int:
        """The category of a known stock code, else predicted from description (and price)."""
        known = self.code_category_.get(stock_code)
        if known is not None:
            return known
        cache = self.__dict__.setdefault("_cache", {})
        key = (description, unit_price)
        if key not in cache:
            price = np.array([np.nan if unit_price is None else unit_price])
            cache[key] = int(self.kmeans_.predict(self._matrix([description or ""], price))[0])
        return cache[key]

    def reference_price(self, stock_code: str) -> float | None:
        """The product's median unit price in the training log (None if unseen)."""
        return self.reference_price_.get(stock_code)

    @property
    def known_products(self) -> dict[str, tuple[int, float | None]]:
        """Product code -> (`category_of`, `reference_price`) for the codes seen in training,
        whose category does not depend on the description (built once, not pickled)."""
        table = self.__dict__.get("_known_products")
        if table is None:
            table = self.__dict__["_known_products"] = {
                code: (int(cat), self.reference_price_.get(code))
                for code, cat in self.code_category_.items() if is_product_code(code)}
        return table

    def category_names(self) -> list[str]:
        """A short name per category: its three most typical keywords."""
        return [", ".join(k[:3]) or f"category {i}" for i, k in enumerate(self.category_keywords_)]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_cache", None)
        state.pop("_known_products", None)
        return state
