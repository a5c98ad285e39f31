from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from offline.cli import forecast_summary
from offline.metrics import (
    FORECAST_TARGETS,
    INTERVAL_METRICS,
    bootstrap_intervals,
    meets_target,
    rank_auc,
    target_text,
)


def _customers(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    orders = rng.poisson(1.2, n)
    spend = orders * rng.lognormal(5, 1, n)
    first = rng.lognormal(5, 1, n)
    return {"spend": spend, "orders": orders, "first_basket": first,
            "p_repeat": rng.uniform(size=n) + 0.4 * (orders > 0),
            "exp_spend": spend * rng.lognormal(0, 1, n) + first}


@pytest.mark.parametrize("seed", range(5))
def test_rank_auc_is_roc_auc_with_ties(seed) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.uniform(size=200) + 0.3 * y, 1)  # rounded: many ties
    assert rank_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_rank_auc_of_one_class_is_nan() -> None:
    assert math.isnan(rank_auc(np.ones(5), np.arange(5.0)))


def test_intervals_hold_the_figure_and_repeat_by_seed() -> None:
    c = _customers(400)
    ci = bootstrap_intervals(**c, n_boot=300)
    assert sorted(ci) == sorted(INTERVAL_METRICS)
    assert all(low <= high for low, high in ci.values())
    auc = rank_auc(c["orders"] >= 1, c["p_repeat"])
    assert ci["repeat_auc"][0] < auc < ci["repeat_auc"][1]
    ratio = c["exp_spend"].sum() / c["spend"].sum()
    assert ci["cohort_total_ratio"][0] < ratio < ci["cohort_total_ratio"][1]
    assert bootstrap_intervals(**c, n_boot=300) == ci
    assert bootstrap_intervals(**c, n_boot=300, seed=1) != ci


def test_intervals_narrow_with_more_customers() -> None:
    def width(n: int) -> float:
        low, high = bootstrap_intervals(**_customers(n), n_boot=300)["repeat_auc"]
        return high - low

    assert width(4000) < 0.6 * width(250)


def test_a_perfect_ranking_has_a_point_interval() -> None:
    c = _customers(300)
    c["p_repeat"] = (c["orders"] >= 1).astype(float)
    assert bootstrap_intervals(**c, n_boot=100)["repeat_auc"] == [1.0, 1.0]


def test_targets_read_both_ways() -> None:
    assert meets_target("repeat_auc", 0.65) and not meets_target("repeat_auc", 0.649)
    assert meets_target("decile_mape", 0.25) and not meets_target("decile_mape", 0.251)
    assert [meets_target("cohort_total_ratio", v) for v in (0.84, 0.85, 1.15, 1.16)] == [
        False, True, True, False]
    assert target_text("gini_lift") == ">= 1.05"
    assert target_text("decile_mape") == "<= 0.25"
    assert target_text("cohort_total_ratio") == "0.85 .. 1.15"
    assert target_text("normalized_gini") == ""


def test_card_carries_intervals_and_targets_agree(trained) -> None:
    fc = trained.card["forecast"]
    ci = fc["holdout_ci95"]
    assert sorted(ci) == sorted(INTERVAL_METRICS)
    assert all(low <= high for low, high in ci.values())
    assert ci["repeat_auc"][0] <= fc["holdout"]["repeat_auc"] <= ci["repeat_auc"][1]
    verdicts = dict(zip(FORECAST_TARGETS, ("gini_lift>=1.05", "repeat_auc>=0.65",
                                           "decile_mape<=0.25", "cohort_total_within_15pct"),
                        strict=True))
    summary = forecast_summary(fc)
    for metric, key in verdicts.items():
        met = meets_target(metric, fc["holdout"][metric])
        assert trained.card["targets"][key] == met
        line = next(ln for ln in summary.splitlines() if ln.strip().startswith(metric))
        assert line.endswith("met" if met else "missed")


def test_no_customers_or_one_class_give_nan_intervals() -> None:
    empty = {k: np.array([]) for k in _customers(1)}
    assert all(math.isnan(v) for pair in bootstrap_intervals(**empty).values() for v in pair)
    c = _customers(50)
    c["orders"] = np.ones(50, dtype=int)  # everyone came back: no AUC to draw
    low, high = bootstrap_intervals(**c, n_boot=50)["repeat_auc"]
    assert math.isnan(low) and math.isnan(high)
