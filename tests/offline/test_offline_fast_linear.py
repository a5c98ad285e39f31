"""`offline.fast_linear`: the forecaster's linear pipeline, same numbers without the wrappers."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from offline.fast_linear import speed_up_linear
from offline.forecast import LOG_COLUMNS, linear_pipeline


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 400
    x = pd.DataFrame({
        "basket_value": rng.lognormal(5, 1.5, n),
        "hour": rng.uniform(7, 20, n),
        "n_lines": rng.integers(1, 60, n).astype(float),
        "n_negative_lines": rng.poisson(0.2, n).astype(float),
        "is_uk": rng.integers(0, 2, n).astype(float),
        "price_ratio": rng.lognormal(0, 0.3, n),
    })
    y = np.log1p(x["basket_value"]) * 0.8 + rng.normal(0, 0.5, n)
    return x, y.to_numpy()


def test_same_bits_as_the_pipeline(data) -> None:
    x, y = data
    plain = linear_pipeline(list(x.columns), alpha=10.0).fit(x, y)
    assert sum(c in LOG_COLUMNS for c in x.columns) == 4  # both parts of the transformer
    fast = copy.deepcopy(plain)
    assert speed_up_linear(fast)
    extreme = x.iloc[:5].copy()
    extreme.iloc[0, 0] = 1e9  # beyond the winsorizer's bounds
    extreme.iloc[1, 0] = -50.0  # a return: log1p of 0
    for rows in (x.iloc[:1], x.iloc[:7], x, extreme):
        assert np.array_equal(fast.predict(rows), plain.predict(rows))


def test_other_inputs_and_pipelines_go_to_scikit_learn(data) -> None:
    x, y = data
    fast = linear_pipeline(list(x.columns), alpha=1.0).fit(x, y)
    assert speed_up_linear(fast)
    plain = linear_pipeline(list(x.columns), alpha=1.0).fit(x, y)
    shuffled = x[list(x.columns)[::-1]]  # the transformer selects by name: accepted
    assert np.array_equal(fast.predict(shuffled), plain.predict(shuffled))
    holes = x.iloc[:3].copy()
    holes.iloc[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fast.predict(holes)
    with pytest.raises(ValueError, match="0 sample"):
        fast.predict(x.iloc[:0])
    other = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y > y.mean())
    assert not speed_up_linear(other)
    assert not speed_up_linear(None)
    weighted = linear_pipeline(list(x.columns), alpha=1.0)
    weighted.steps[0][1].set_params(transformer_weights={"log": 2.0})
    assert not speed_up_linear(weighted.fit(x, y))  # weights scale a part: not mirrored


def test_the_bundle_s_traversal_finds_the_pipeline(data) -> None:
    """`fast_trees.speed_up`, which `load_bundle` runs, reaches a linear pipeline wherever it
    sits (here an attribute of an estimator, as the forecaster's `log_spend_`)."""
    from offline.fast_trees import speed_up
    from offline.forecast import Winsorizer

    x, y = data
    holder = Winsorizer()
    holder.pipeline_ = linear_pipeline(list(x.columns), alpha=1.0).fit(x, y)
    expected = holder.pipeline_.predict(x)
    assert speed_up({"model": holder}) == 1
    assert "predict" in vars(holder.pipeline_)  # patched on the instance
    assert np.array_equal(holder.pipeline_.predict(x), expected)
