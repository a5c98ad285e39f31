"""The CV harness that chooses the forecaster's settings: same folds for every variant, only the
customers it is given (the fit customers), paired differences to the first variant."""

from __future__ import annotations

import numpy as np
import pandas as pd

from offline.forecast_cv import KEYS, cross_validate, summarise


def _data(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"basket_value": rng.lognormal(5, 1, n), "n_lines": rng.integers(1, 30, n)})
    orders = rng.poisson(x["basket_value"] / 300)
    spend = orders * x["basket_value"]
    labels = pd.DataFrame({"orders": orders, "spend": spend, "repeat": (orders >= 1).astype(int)})
    return x, labels


def test_cross_validate_rows_and_summary() -> None:
    x, labels = _data()
    variants = {"a": {"repeat_max_depth": 2}, "b": {}}
    folds = cross_validate(x, labels, variants, repeats=1)
    assert len(folds) == 2 * 5
    assert set(KEYS) <= set(folds.columns)
    assert folds["repeat_auc"].between(0, 1).all()
    s = summarise(folds)
    assert list(s.index) == ["a", "b"]
    assert np.isfinite(s.loc["b", "d_auc"]) and s.loc["b", "d_auc_se"] >= 0


def test_same_variant_twice_has_zero_difference() -> None:
    x, labels = _data(seed=1)
    folds = cross_validate(x, labels, {"a": {}, "b": {}}, repeats=1)
    assert summarise(folds).loc["b", "d_auc"] == 0.0
