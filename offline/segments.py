"""Customer segments from their first-year behaviour: k-means, k by silhouette, stability, labels.

Behaviour over [first purchase, first purchase + horizon] from the clean, cancellation-netted
lines: number of baskets, mean / max basket value, total spend, basket width, and the share of
spend per product category. Standardised, clustered with k-means for k over a range; the k with
the best silhouette wins (the elbow curve is kept for the report). Stability is the mean adjusted
Rand index between the chosen clustering and clusterings refit on bootstrap resamples.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from offline.categories import candidate_ks

log = logging.getLogger(__name__)


def behaviour_table(lines: pd.DataFrame, first: pd.DataFrame, categories: pd.Series,
                    n_categories: int, horizon_days: int) -> pd.DataFrame:
    """First-year behaviour per customer (index customer_id, in ``first``'s order).

    ``lines``: clean customer order lines with ``net_quantity``; ``first``: customer_id,
    first_purchase_at; ``categories``: category per line (aligned with ``lines``).
    """
    d = lines.assign(category=categories.to_numpy())
    d = d.merge(first[["customer_id", "first_purchase_at"]], on="customer_id")
    d = d[(d["invoiced_at"] >= d["first_purchase_at"]) & (
        d["invoiced_at"] <= d["first_purchase_at"] + pd.Timedelta(days=horizon_days))]
    d = d.assign(value=d["net_quantity"] * d["unit_price"])
    baskets = d.groupby(["customer_id", "invoice_id"]).agg(
        value=("value", "sum"), n_lines=("stock_code", "size"))
    baskets = baskets[baskets["value"] > 0]
    g = baskets.groupby("customer_id")
    out = pd.DataFrame({
        "baskets": g.size(),
        "mean_basket": g["value"].mean(),
        "max_basket": g["value"].max(),
        "spend": g["value"].sum(),
        "basket_lines": g["n_lines"].mean(),
    })
    share = d.pivot_table(index="customer_id", columns="category", values="value",
                          aggfunc="sum", fill_value=0.0)
    share = share.reindex(columns=range(n_categories), fill_value=0.0).clip(lower=0)
    share = share.div(share.sum(axis=1).replace(0, 1.0), axis=0)
    share.columns = [f"share_cat_{c}" for c in range(n_categories)]
    out = out.join(share).reindex(first["customer_id"]).fillna(0.0)
    for col in ("baskets", "mean_basket", "max_basket", "spend", "basket_lines"):
        out[f"log_{col}"] = np.log1p(out[col])
    return out


class CustomerSegmenter(BaseEstimator):
    """Standardise + k-means; k chosen by silhouette over ``k_range``."""

    def __init__(self, k_range: tuple[int, int] = (3, 10), n_bootstrap: int = 10,
                 random_state: int = 0) -> None:
        self.k_range = k_range
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    def fit(self, x: pd.DataFrame) -> CustomerSegmenter:
        self.columns_ = list(x.columns)
        scaler = StandardScaler().fit(x)
        z = scaler.transform(x)
        self.silhouette_: dict[int, float] = {}
        self.inertia_: dict[int, float] = {}
        models: dict[int, KMeans] = {}
        ks = candidate_ks(self.k_range, z)
        if not ks:
            raise ValueError(f"too few distinct customers ({len(x)}) to segment")
        for k in ks:
            km = KMeans(n_clusters=k, n_init=5, random_state=self.random_state).fit(z)
            models[k] = km
            self.inertia_[k] = float(km.inertia_)
            self.silhouette_[k] = float(silhouette_score(
                z, km.labels_, sample_size=min(len(z), 3000), random_state=self.random_state))
        self.k_ = max(self.silhouette_, key=lambda k: (round(self.silhouette_[k], 3), -k))
        self.pipeline_: Pipeline = make_pipeline(scaler, models[self.k_])
        self.labels_ = models[self.k_].labels_.astype(int)
        self.stability_ari_ = self._stability(z)
        log.info("event=segments k=%d silhouette=%.3f stability_ari=%.3f",
                 self.k_, self.silhouette_[self.k_], self.stability_ari_)
        return self

    def _stability(self, z: np.ndarray) -> float:
        rng = np.random.default_rng(self.random_state)
        scores = []
        for b in range(self.n_bootstrap):
            idx = rng.integers(0, len(z), len(z))
            km = KMeans(n_clusters=self.k_, n_init=3, random_state=b).fit(z[idx])
            scores.append(adjusted_rand_score(self.labels_, km.predict(z)))
        return float(np.mean(scores)) if scores else float("nan")

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict(x[self.columns_]).astype(int)

    def profiles(self, x: pd.DataFrame) -> pd.DataFrame:
        """Mean raw behaviour and size per segment."""
        p = x.groupby(self.labels_).mean(numeric_only=True)
        p.insert(0, "customers", np.bincount(self.labels_, minlength=self.k_))
        return p


def segment_labels(profile: pd.DataFrame, overall: pd.DataFrame,
                   category_names: list[str]) -> list[str]:
    """A readable label per segment from its profile, relative to all customers."""
    med = overall.median(numeric_only=True)
    labels: list[str] = []
    share_cols = [c for c in profile.columns if c.startswith("share_cat_")]
    for seg, row in profile.iterrows():
        parts = []
        if row["mean_basket"] >= 2.5 * med["mean_basket"]:
            parts.append("wholesale")
        elif row["mean_basket"] <= 0.6 * med["mean_basket"]:
            parts.append("small spenders")
        if row["baskets"] >= 2 * max(med["baskets"], 1):
            parts.append("frequent")
        elif row["baskets"] <= 1.3:
            parts.append("one-off")
        if row["basket_lines"] >= 1.6 * med["basket_lines"]:
            parts.append("large baskets")
        elif row["basket_lines"] <= 0.6 * med["basket_lines"]:
            parts.append("narrow baskets")
        if share_cols:
            top = max(share_cols, key=lambda c: row[c])
            cat = int(top.rsplit("_", 1)[1])
            if row[top] >= 0.4:
                name = category_names[cat] if cat < len(category_names) else f"category {cat}"
                parts.append(f"mostly {name.split(', ')[0]}")
        label = ", ".join(parts) or "typical"
        labels.append(f"{label} (#{seg})")
    return labels
