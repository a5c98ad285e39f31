"""Forecast and classification metrics of ``docs/evaluation.md``.

>>> round(normalized_gini([1, 2, 3], [1, 2, 3]), 6)
1.0
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score


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
    g = normalized_gini(spend, exp_spend)
    g0 = normalized_gini(spend, first_basket)
    two = len(np.unique(repeat)) == 2
    return {
        "customers": int(len(spend)),
        "normalized_gini": g,
        "baseline_gini": g0,
        "gini_lift": g / g0 if g0 else float("nan"),
        "decile_mape": decile_mape(spend, exp_spend),
        "spearman_spend": float(spearmanr(exp_spend, spend).statistic),
        "spearman_orders": float(spearmanr(exp_orders, orders).statistic),
        "repeat_auc": float(roc_auc_score(repeat, p_repeat)) if two else float("nan"),
        "repeat_pr_auc": float(average_precision_score(repeat, p_repeat)) if two else float("nan"),
        "cohort_total_predicted": float(np.sum(exp_spend)),
        "cohort_total_actual": float(np.sum(spend)),
        "cohort_total_ratio": float(np.sum(exp_spend) / max(np.sum(spend), 1e-12)),
    }


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
