"""Forecast and classification metrics of ``docs/evaluation.md``.

>>> round(normalized_gini([1, 2, 3], [1, 2, 3]), 6)
1.0
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import average_precision_score


def gini(actual: np.ndarray, pred: np.ndarray) -> float:
    """Gini of a ranking: actual values ordered by descending prediction (ties: stable)."""
    actual = np.asarray(actual, dtype=float)
    pred = np.asarray(pred, dtype=float)
    order = np.lexsort((np.arange(len(pred)), -pred))
    a = actual[order]
    total = a.sum()
    if total <= 0:
        return 0.0
    cum = np.cumsum(a) / total
    n = len(a)
    return float(cum.sum() / n - (n + 1) / (2 * n))


def normalized_gini(actual: np.ndarray, pred: np.ndarray) -> float:
    """Gini of the model's ranking divided by the Gini of the perfect ranking."""
    perfect = gini(actual, actual)
    return gini(actual, pred) / perfect if perfect else 0.0


def gini_curve(actual: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of customers vs cumulative share of actual value (for plots)."""
    actual = np.asarray(actual, dtype=float)
    order = np.lexsort((np.arange(len(pred)), -np.asarray(pred, dtype=float)))
    a = actual[order]
    x = np.arange(1, len(a) + 1) / len(a)
    return np.r_[0, x], np.r_[0, np.cumsum(a) / max(a.sum(), 1e-12)]


def deciles(actual: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted and mean actual per equal-count decile of the prediction."""
    actual = np.asarray(actual, dtype=float)
    pred = np.asarray(pred, dtype=float)
    order = np.lexsort((np.arange(len(pred)), pred))
    parts = np.array_split(order, 10)
    return (np.array([pred[p].mean() for p in parts]),
            np.array([actual[p].mean() for p in parts]))


def decile_mape(actual: np.ndarray, pred: np.ndarray) -> float:
    """Mean over deciles of |mean predicted - mean actual| / mean actual (empty actual skipped)."""
    p, a = deciles(actual, pred)
    ok = a > 0
    return float(np.mean(np.abs(p[ok] - a[ok]) / a[ok]))


def forecast_metrics(spend: np.ndarray, orders: np.ndarray, first_basket: np.ndarray,
                     p_repeat: np.ndarray, exp_orders: np.ndarray,
                     exp_spend: np.ndarray) -> dict[str, float]:
    """Every forecast metric on one set of customers."""
    spend = np.asarray(spend, dtype=float)
    repeat = (np.asarray(orders) >= 1).astype(int)
    two = len(np.unique(repeat)) == 2
    return {
        "customers": int(len(spend)),
        **ranking_figures(spend, repeat, first_basket, p_repeat, exp_spend),
        "spearman_spend": float(spearmanr(exp_spend, spend).statistic),
        "spearman_orders": float(spearmanr(exp_orders, orders).statistic),
        "repeat_pr_auc": float(average_precision_score(repeat, p_repeat)) if two else float("nan"),
        "cohort_total_predicted": float(np.sum(exp_spend)),
        "cohort_total_actual": float(np.sum(spend)),
    }


def ranking_figures(spend: np.ndarray, repeat: np.ndarray, first_basket: np.ndarray,
                    p_repeat: np.ndarray, exp_spend: np.ndarray) -> dict[str, float]:
    """The figures with a target, the Ginis they come from and the repeat AUC: one definition
    for the held-out figures (`forecast_metrics`) and their intervals (`bootstrap_intervals`).
    """
    g = normalized_gini(spend, exp_spend)
    g0 = normalized_gini(spend, first_basket)
    return {
        "normalized_gini": g,
        "baseline_gini": g0,
        "gini_lift": g / g0 if g0 else float("nan"),
        "decile_mape": decile_mape(spend, exp_spend),
        "repeat_auc": rank_auc(repeat, p_repeat),
        "cohort_total_ratio": float(np.sum(exp_spend) / max(np.sum(spend), 1e-12)),
    }


def rank_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half); NaN with one class.

    ``sklearn.metrics.roc_auc_score``'s value without its checks: the bootstrap calls it a
    thousand times.

    >>> rank_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y = np.asarray(y).astype(bool)
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


#: the forecast's floors (issue #3): metric -> (lowest, highest) acceptable value, None = open
FORECAST_TARGETS: dict[str, tuple[float | None, float | None]] = {
    "gini_lift": (1.05, None),
    "repeat_auc": (0.65, None),
    "decile_mape": (None, 0.25),
    "cohort_total_ratio": (0.85, 1.15),
}


def meets_target(metric: str, value: float) -> bool:
    """Whether ``value`` is within :data:`FORECAST_TARGETS`' bounds for ``metric``.

    >>> meets_target("repeat_auc", 0.64), meets_target("cohort_total_ratio", 0.996)
    (False, True)
    """
    low, high = FORECAST_TARGETS[metric]
    return (low is None or value >= low) and (high is None or value <= high)


def target_text(metric: str) -> str:
    """The target as a reader sees it: ">= 0.65", "<= 0.25", "0.85 .. 1.15" ("" if none)."""
    low, high = FORECAST_TARGETS.get(metric, (None, None))
    if low is not None and high is not None:
        return f"{low:g} .. {high:g}"
    if low is not None:
        return f">= {low:g}"
    return "" if high is None else f"<= {high:g}"


#: the forecast figures given a bootstrap interval (those with a target, and the Gini itself)
INTERVAL_METRICS = ("normalized_gini", "gini_lift", "repeat_auc", "decile_mape",
                    "cohort_total_ratio")


def bootstrap_intervals(spend: np.ndarray, orders: np.ndarray, first_basket: np.ndarray,
                        p_repeat: np.ndarray, exp_spend: np.ndarray, n_boot: int = 1000,
                        level: float = 0.95, seed: int = 0) -> dict[str, list[float]]:
    """Percentile intervals of :data:`INTERVAL_METRICS` over resamples of the customers.

    How far a held-out figure could move with other customers of the same kind: a few hundred
    held-out customers leave the repeat AUC uncertain by several hundredths, as much as any
    model change measured in cross-validation. The resamples are seeded, so a run repeats.

    >>> rng = np.random.default_rng(1)
    >>> orders = rng.poisson(1.0, 300); spend = orders * rng.lognormal(5, 1, 300)
    >>> p = rng.uniform(size=300) + 0.5 * (orders > 0)
    >>> ci = bootstrap_intervals(spend, orders, spend + 1.0, p, spend + 1.0, n_boot=200)
    >>> low, high = ci["repeat_auc"]
    >>> bool(low < rank_auc(orders >= 1, p) < high), sorted(ci) == sorted(INTERVAL_METRICS)
    (True, True)
    """
    spend = np.asarray(spend, dtype=float)
    repeat = np.asarray(orders) >= 1
    first_basket = np.asarray(first_basket, dtype=float)
    p_repeat = np.asarray(p_repeat, dtype=float)
    exp_spend = np.asarray(exp_spend, dtype=float)
    n = len(spend)
    if n == 0:  # no held-out customer (a small log): no interval, as no figure
        return {k: [float("nan"), float("nan")] for k in INTERVAL_METRICS}
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {k: [] for k in INTERVAL_METRICS}
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        figures = ranking_figures(spend[i], repeat[i], first_basket[i], p_repeat[i],
                                  exp_spend[i])
        for k in INTERVAL_METRICS:
            out[k].append(figures[k])
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():  # all NaN (one class in every resample): a NaN interval
        warnings.simplefilter("ignore", RuntimeWarning)
        return {k: [float(q) for q in np.nanpercentile(v, [tail, 100 - tail])]
                for k, v in out.items()}


def elbow_k(inertia: dict[int, float]) -> int | None:
    """The elbow of an inertia curve: the k farthest below the chord from first to last k.

    >>> elbow_k({2: 100.0, 3: 40.0, 4: 30.0, 5: 25.0})
    3
    """
    ks = sorted(int(k) for k in inertia)
    if len(ks) < 3:
        return None
    y = np.array([inertia[k] for k in ks], dtype=float)
    x = np.array(ks, dtype=float)
    chord = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
    return int(ks[int(np.argmax(chord - y))])
