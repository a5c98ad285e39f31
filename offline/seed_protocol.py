"""`train --protocol seed`: the published notebook's protocol, with its models and ours.

The seed project (a public "customer segmentation" notebook on the older Online Retail file):

- period 2010-12-01 .. 2011-12-09; time split at 2011-10-01;
- 5 product categories (keywords x price bands, k-means);
- per customer over a period: basket count, min / max / mean basket value and the share (%) of
  spend in each category; 11 segments = k-means on those 9 standardised features, fitted on the
  training period;
- classifiers on 6 of them (mean basket value + the 5 category shares), tuned by grid search;
- test customers: their features over the test period only, the count rescaled by 5 as the
  notebook did (10 training months vs 2 test months), segment = the training k-means applied to
  them; accuracy = classifier vs that segment. The seed's soft vote (random forest, gradient
  boosting, k-NN) reached about 75 %.

Ours, on exactly the same split, features and labels: the test customers are described by two
months of behaviour with a rescaled count, the training customers by ten months, so our models
also learn from what the test looks like: the training period cut into two-month windows, each
customer-window's features computed (count x5) and labelled by the same training k-means. Only
training-period data is used. Then a random forest, a scaled logistic regression, gradient
boosting and their soft vote.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.ensemble import (
    AdaBoostClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier
from tqdm.auto import tqdm

from offline.categories import ProductCategoriser, product_table
from offline.clean import clean_log

log = logging.getLogger(__name__)

PERIOD = (pd.Timestamp("2010-12-01"), pd.Timestamp("2011-12-10"))
SPLIT = pd.Timestamp("2011-10-01")
N_CATEGORIES = 5
N_SEGMENTS = 11
TEST_COUNT_SCALE = 5
CLUSTER_COLS = ["count", "min", "max", "mean", *(f"categ_{i}" for i in range(N_CATEGORIES))]
CLASSIFIER_COLS = ["mean", *(f"categ_{i}" for i in range(N_CATEGORIES))]


class SeedProtocolError(ValueError):
    """The log does not cover the seed's period."""


def customer_features(lines: pd.DataFrame, count_scale: float = 1.0) -> pd.DataFrame:
    """The seed's per-customer basket features from clean netted lines with ``category``."""
    d = lines.assign(value=lines["net_quantity"] * lines["unit_price"])
    for i in range(N_CATEGORIES):
        d[f"categ_{i}"] = np.where(d["category"] == i, d["value"], 0.0)
    cols = ["value", *(f"categ_{i}" for i in range(N_CATEGORIES))]
    baskets = d.groupby(["customer_id", "invoice_id"])[cols].sum()
    baskets = baskets[baskets["value"] > 0]
    g = baskets.groupby("customer_id")
    out = pd.DataFrame({"count": g.size() * count_scale, "min": g["value"].min(),
                        "max": g["value"].max(), "mean": g["value"].mean()})
    total = g["value"].sum()
    for i in range(N_CATEGORIES):
        out[f"categ_{i}"] = 100 * g[f"categ_{i}"].sum() / total
    return out


def seed_models(seed: int) -> dict[str, tuple[Any, dict[str, list[Any]]]]:
    """The notebook's classifiers (default iterations) and trimmed grids, on unscaled features
    as it used them."""
    return {
        "svc (linear)": (LinearSVC(random_state=seed),
                         {"C": [0.01, 1.0, 100.0]}),
        "logistic_regression": (LogisticRegression(),
                                {"C": list(np.logspace(-2, 2, 5))}),
        "k_neighbors": (KNeighborsClassifier(), {"n_neighbors": [1, 5, 10, 20, 40]}),
        "decision_tree": (DecisionTreeClassifier(random_state=seed),
                          {"criterion": ["entropy", "gini"], "max_features": ["sqrt", "log2"]}),
        "random_forest": (RandomForestClassifier(random_state=seed, n_jobs=1),
                          {"n_estimators": [20, 100], "max_features": ["sqrt"]}),
        "adaboost": (AdaBoostClassifier(random_state=seed), {"n_estimators": [50]}),
        "gradient_boosting": (GradientBoostingClassifier(random_state=seed),
                              {"n_estimators": [50]}),
    }


def our_models(seed: int) -> dict[str, Any]:
    """This project's models for the protocol (trained on the window-augmented data)."""
    return {
        "ours: random forest": RandomForestClassifier(
            n_estimators=200, min_samples_leaf=2, n_jobs=2, random_state=seed),
        "ours: logistic (scaled)": make_pipeline(
            StandardScaler(), LogisticRegression(C=100.0, max_iter=5000)),
        "ours: gradient boosting": HistGradientBoostingClassifier(
            learning_rate=0.1, max_iter=150, l2_regularization=1.0, min_samples_leaf=10,
            early_stopping=False, random_state=seed),
    }


class PrefitSoftVote:
    """Soft vote of already fitted classifiers (same classes): mean of their probabilities."""

    def __init__(self, models: list[Any]) -> None:
        self.models = models
        self.classes_ = models[0].classes_

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        proba = np.mean([m.predict_proba(x) for m in self.models], axis=0)
        return self.classes_[np.argmax(proba, axis=1)]


def window_features(lines: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                    months: int = 2) -> pd.DataFrame:
    """Customer features over consecutive ``months``-long windows in [start, end), count x5."""
    frames = []
    for s in pd.date_range(start, end, freq="MS"):
        e = s + pd.DateOffset(months=months)
        if e > end:
            break
        w = lines[(lines["invoiced_at"] >= s) & (lines["invoiced_at"] < e)]
        if len(w):
            frames.append(customer_features(w, TEST_COUNT_SCALE))
    return pd.concat(frames) if frames else pd.DataFrame(columns=CLUSTER_COLS)


def _fit_grid(models: dict[str, tuple[Any, dict]], x: pd.DataFrame, y: np.ndarray, seed: int,
              progress: bool, desc: str) -> dict[str, Any]:
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    fitted = {}
    for name, (est, grid) in tqdm(list(models.items()), desc=desc, disable=not progress):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted[name] = GridSearchCV(est, grid, cv=folds, n_jobs=2).fit(x, y).best_estimator_
    return fitted


def run_seed_protocol(raw: pd.DataFrame, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Run the protocol on a normalised log; return the comparison for the card and report."""
    d = raw[(raw["invoiced_at"] >= PERIOD[0]) & (raw["invoiced_at"] < PERIOD[1])]
    if d.empty or d["invoiced_at"].min() > SPLIT or d["invoiced_at"].max() < SPLIT:
        raise SeedProtocolError("the log does not cover the seed's period 2010-12-01 .. "
                                "2011-12-09 around the 2011-10-01 split")
    cleaned = clean_log(d)
    cat = ProductCategoriser(k_range=(N_CATEGORIES, N_CATEGORIES), random_state=seed)
    cat.fit(product_table(cleaned.product_rows))
    lines = cleaned.customer_lines
    lines = lines.assign(category=[cat.category_of(s, None) for s in lines["stock_code"]])
    train_f = customer_features(lines[lines["invoiced_at"] < SPLIT])
    test_f = customer_features(lines[lines["invoiced_at"] >= SPLIT], TEST_COUNT_SCALE)
    scaler = StandardScaler().fit(train_f[CLUSTER_COLS])
    km = KMeans(n_clusters=N_SEGMENTS, n_init=10, random_state=seed).fit(
        scaler.transform(train_f[CLUSTER_COLS]))
    y_train = km.labels_
    y_test = km.predict(scaler.transform(test_f[CLUSTER_COLS]))
    x_train, x_test = train_f[CLASSIFIER_COLS], test_f[CLASSIFIER_COLS]

    seed_fit = _fit_grid(seed_models(seed), x_train, y_train, seed, progress, "seed models")
    seed_fit["soft vote (rf, gb, knn)"] = VotingClassifier(
        [("rf", seed_fit["random_forest"]), ("gb", seed_fit["gradient_boosting"]),
         ("knn", seed_fit["k_neighbors"])], voting="soft").fit(x_train, y_train)
    windows = window_features(lines[lines["invoiced_at"] < SPLIT], PERIOD[0], SPLIT)
    y_windows = km.predict(scaler.transform(windows[CLUSTER_COLS]))
    x_aug = pd.concat([x_train, windows[CLASSIFIER_COLS]], ignore_index=True)
    y_aug = np.r_[y_train, y_windows]
    ours = {name: model.fit(x_aug, y_aug) for name, model in
            tqdm(our_models(seed).items(), desc="our models", disable=not progress)}
    ours["ours: soft vote (rf, logistic, gb)"] = PrefitSoftVote(list(ours.values()))

    rows: dict[str, dict[str, float]] = {}
    for group, fitted in (("seed", seed_fit), ("ours", ours)):
        for name, model in fitted.items():
            pred = model.predict(x_test)
            rows[name] = {"accuracy": float(accuracy_score(y_test, pred)),
                          "macro_f1": float(f1_score(y_test, pred, average="macro")),
                          "is_ours": float(group == "ours")}
    best_ours = max((n for n in rows if rows[n]["is_ours"]), key=lambda n: rows[n]["accuracy"])
    seed_vote = rows["soft vote (rf, gb, knn)"]["accuracy"]
    result = {
        "description": (
            f"Seed protocol: {len(train_f)} training-period customers (before {SPLIT.date()}), "
            f"{len(test_f)} test-period customers; {N_CATEGORIES} product categories, "
            f"{N_SEGMENTS} segments from {len(CLUSTER_COLS)} standardised basket features, "
            f"classifiers on {len(CLASSIFIER_COLS)} features; test counts x{TEST_COUNT_SCALE}."),
        "train_customers": len(train_f), "test_customers": len(test_f),
        "window_samples": len(windows),
        "models": rows, "seed_soft_vote_accuracy": seed_vote,
        "best_ours": best_ours, "best_ours_accuracy": rows[best_ours]["accuracy"],
        "ours_beats_seed": rows[best_ours]["accuracy"] > seed_vote,
    }
    log.info("event=seed_protocol seed_vote=%.3f best_ours=%s accuracy=%.3f", seed_vote,
             best_ours, rows[best_ours]["accuracy"])
    return result
