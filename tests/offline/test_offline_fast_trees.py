"""`offline.fast_trees`: the packed walk gives scikit-learn's numbers exactly, or steps aside."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from offline.fast_trees import speed_up

COLUMNS = ["basket_value", "n_lines", "share", "hour"]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = pd.DataFrame({
        "basket_value": rng.lognormal(5, 1, 600),
        "n_lines": rng.integers(1, 40, 600),  # integers: the float32 cast must match
        "share": rng.random(600),
        "hour": rng.integers(6, 20, 600).astype(float),
    })
    y = (x["basket_value"] > 150).astype(int) + (x["share"] > 0.7).astype(int)
    spend = rng.poisson(x["basket_value"] / 50) * 10.0
    return x, y.to_numpy(), spend


def _pairs(model_factory, x, y) -> tuple[object, object]:
    plain = model_factory().fit(x, y)
    fast = copy.deepcopy(plain)
    assert speed_up(fast) >= 1
    return plain, fast


@pytest.mark.parametrize("factory", [
    lambda: RandomForestClassifier(n_estimators=30, random_state=0),
    lambda: ExtraTreesClassifier(n_estimators=10, max_depth=6, random_state=0),
    lambda: DecisionTreeClassifier(random_state=0),
    lambda: HistGradientBoostingClassifier(max_iter=40, random_state=0),  # 3 classes
])
def test_classifiers_give_identical_probabilities(data, factory) -> None:
    x, y, _ = data
    plain, fast = _pairs(factory, x, y)
    for rows in (x.iloc[:1], x.iloc[:7], x.iloc[:13], x):  # the walk goes 8 rows at a time
        assert np.array_equal(plain.predict_proba(rows), fast.predict_proba(rows))
        assert np.array_equal(plain.predict(rows), fast.predict(rows))


def test_binary_and_poisson_gradient_boosting_identical(data) -> None:
    x, y, spend = data
    plain, fast = _pairs(lambda: HistGradientBoostingClassifier(max_depth=1, max_iter=60),
                         x, y > 0)
    assert np.array_equal(plain.predict_proba(x), fast.predict_proba(x))
    plain, fast = _pairs(lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=50),
                         x, spend)
    assert np.array_equal(plain.predict(x), fast.predict(x))


@pytest.mark.parametrize("factory", [
    lambda: RandomForestClassifier(n_estimators=30, random_state=0),
    lambda: HistGradientBoostingClassifier(max_depth=1, max_iter=60),
])
def test_models_fitted_on_plain_matrices_take_the_fast_path_identically(
        data, factory, monkeypatch) -> None:
    """A model fitted on a float64 matrix (no column names, e.g. `RepeatClassifier`'s GBM)
    reads a float64 matrix without scikit-learn's checks, with the same numbers; anything
    else (another dtype, a wrong width) still goes through them."""
    x, y, _ = data
    plain, fast = _pairs(factory, x.to_numpy(dtype=float), y > 0)
    rows = x.to_numpy(dtype=float)
    expected = plain.predict_proba(rows)
    checked: list[object] = []
    for name in ("_preprocess_X", "_validate_X_predict"):
        if hasattr(fast, name):
            original = getattr(fast, name)
            monkeypatch.setattr(fast, name, lambda *a, _o=original, **k: (
                checked.append(1), _o(*a, **k))[1])
    for part in (rows[:1], rows[:13], rows):
        assert np.array_equal(fast.predict_proba(part), expected[:len(part)])
    assert checked == []
    assert np.array_equal(fast.predict_proba(rows.astype(np.float32)),
                          plain.predict_proba(rows.astype(np.float32)))
    assert checked  # a float32 matrix is converted by scikit-learn's checks
    with pytest.raises(ValueError):
        fast.predict_proba(rows[:, :3])


def test_models_inside_pipelines_and_a_soft_vote_are_found(data) -> None:
    x, y, _ = data
    labels = np.array(["small", "medium", "wholesale"])[y]  # the vote decodes its labels
    vote = VotingClassifier([
        ("rf", make_pipeline(RandomForestClassifier(n_estimators=15, random_state=0))),
        ("gb", make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=20))),
        ("lr", make_pipeline(StandardScaler(), LogisticRegression())),
    ], voting="soft", weights=[2, 1, 1]).fit(x, labels)
    plain = copy.deepcopy(vote)
    # the forest, the boosted model and the vote; the logistic stays as it is
    assert speed_up(vote) == 3
    for rows in (x.iloc[:1], x):
        assert np.array_equal(vote.predict_proba(rows), plain.predict_proba(rows))
        assert np.array_equal(vote.predict(rows), plain.predict(rows))


def test_a_hard_vote_is_left_to_scikit_learn(data) -> None:
    x, y, _ = data
    vote = VotingClassifier([
        ("rf", RandomForestClassifier(n_estimators=5, random_state=0)),
        ("dt", DecisionTreeClassifier(random_state=0)),
        ("lr", make_pipeline(StandardScaler(), LogisticRegression())),
    ], voting="hard").fit(x, y)
    expected = vote.predict(x)
    assert speed_up(vote) == 2
    assert np.array_equal(vote.predict(x), expected)


def test_missing_values_go_to_scikit_learn(data) -> None:
    x, y, _ = data
    plain, fast = _pairs(lambda: HistGradientBoostingClassifier(max_iter=20), x, y)
    holes = x.iloc[:20].copy()
    holes.iloc[::3, 0] = np.nan
    assert np.array_equal(plain.predict_proba(holes), fast.predict_proba(holes))


def test_columns_in_another_order_are_refused_as_scikit_learn_does(data) -> None:
    x, y, _ = data
    _, fast = _pairs(lambda: RandomForestClassifier(n_estimators=5, random_state=0), x, y)
    with pytest.raises(ValueError, match="feature names"):
        fast.predict_proba(x[COLUMNS[::-1]])


def test_infinite_values_are_refused_as_scikit_learn_does(data) -> None:
    x, y, _ = data
    _, fast = _pairs(lambda: RandomForestClassifier(n_estimators=5, random_state=0), x, y)
    bad = x.iloc[:3].copy()
    bad.iloc[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        fast.predict_proba(bad)


def test_categorical_features_and_unfitted_prototypes_are_left_alone(data) -> None:
    from sklearn.ensemble import BaggingClassifier

    x, y, _ = data
    with_cat = x.assign(region=pd.Categorical(np.where(x["hour"] > 12, "north", "south")))
    boosted = HistGradientBoostingClassifier(max_iter=10, categorical_features="from_dtype")
    assert speed_up(boosted.fit(with_cat, y)) == 0
    bagged = BaggingClassifier(DecisionTreeClassifier(), n_estimators=3, random_state=0)
    expected = bagged.fit(x, y).predict_proba(x)
    speed_up(bagged)  # its fitted trees may be sped up; its prototype must not break it
    assert np.array_equal(bagged.predict_proba(x), expected)


def test_no_rows_are_refused_as_scikit_learn_does(data) -> None:
    x, y, _ = data
    vote = VotingClassifier([
        ("rf", make_pipeline(RandomForestClassifier(n_estimators=5, random_state=0))),
        ("gb", HistGradientBoostingClassifier(max_iter=5)),
    ], voting="soft").fit(x, y)
    speed_up(vote)
    for method in (vote.predict, vote.predict_proba, vote.estimators_[1].predict_proba,
                   vote.estimators_[0].predict_proba):
        with pytest.raises(ValueError, match="0 sample"):
            method(x.iloc[:0])
