"""Small-batch inference for fitted tree models, without scikit-learn's per-call machinery.

scikit-learn predicts a random forest tree by tree (a Python call, a lock and a joblib dispatch
each) and a histogram gradient-boosting model iteration by iteration: ~7 ms for a 150-tree
forest and ~2.5 ms for a 100-iteration model, even for one row. The stream scores micro-batches
of a few first purchases, so that fixed cost was most of its latency. `speed_up(model)` patches
every forest, decision tree and histogram gradient-boosting model inside a fitted object
(pipelines, voting ensembles, attributes of custom estimators), and the soft votes and linear
pipelines (`offline.fast_linear`) it finds on the way. Its trees are packed into flat
node arrays and walked by compiled loops (`offline.tree_walk`) that also sum the leaves: one
call per model, no joblib dispatch, lock or per-tree temporary array. For a batch of 220 rows:
a 150-iteration boosted regressor ~0.55 ms a call, a 150-tree forest 2.7-3.1 ms
(scikit-learn's `Tree.apply` per tree, then summing, ~4 ms).

The numbers are scikit-learn's: the same input validation and dtype (float32 for forests and
trees, float64 for gradient boosting), the same `<=` comparisons against the same thresholds,
leaves summed in the same order. Inputs with missing or infinite values, categorical
features and multi-output trees are left to scikit-learn. The patched methods live on the
instance: refit or pickle the original model, not a sped-up one.

>>> import numpy as np
>>> from sklearn.ensemble import RandomForestClassifier
>>> rng = np.random.default_rng(0)
>>> x, y = rng.normal(size=(200, 4)), rng.integers(0, 3, 200)
>>> forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)
>>> expected = forest.predict_proba(x[:5])
>>> speed_up(forest)
1
>>> bool(np.array_equal(forest.predict_proba(x[:5]), expected))
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

from offline import tree_walk
from offline.fast_linear import speed_up_linear
from offline.features import frame_values


@dataclass(frozen=True)
class PackedTrees:
    """Trees as flat node arrays, walked by `offline.tree_walk`; a leaf is its own child."""

    feature: np.ndarray  # node -> column tested (0 at leaves)
    threshold: np.ndarray  # node -> go left when x <= threshold
    children: np.ndarray  # 2 * node -> left child, 2 * node + 1 -> right child
    roots: np.ndarray  # tree -> its root node
    value: np.ndarray  # node -> leaf value(s)

    @classmethod
    def pack(cls, trees: list[tuple[np.ndarray, ...]]) -> PackedTrees:
        """From (left, right, feature, threshold, is_leaf, value) per tree."""
        offsets = np.cumsum([0] + [len(t[0]) for t in trees])
        parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                              ("left", "right", "feature", "threshold", "value")}
        for off, (left, right, feature, threshold, is_leaf, value) in zip(
                offsets, trees, strict=False):
            own = np.arange(len(left)) + off
            parts["left"].append(np.where(is_leaf, own, left.astype(np.intp) + off))
            parts["right"].append(np.where(is_leaf, own, right.astype(np.intp) + off))
            parts["feature"].append(np.where(is_leaf, 0, feature).astype(np.intp))
            parts["threshold"].append(threshold.astype(np.float64))
            parts["value"].append(value)
        flat = {k: np.ascontiguousarray(np.concatenate(v)) for k, v in parts.items()}
        children = np.empty(2 * len(flat["left"]), dtype=np.intp)
        children[0::2], children[1::2] = flat.pop("left"), flat.pop("right")
        return cls(roots=offsets[:-1].astype(np.intp), children=children, **flat)

    def boosted_sum(self, x: np.ndarray, base: float) -> np.ndarray:
        """`base` plus every tree's leaf value, per row of `x` (float64), in tree order."""
        return tree_walk.boosted_sum(x, self.feature, self.threshold, self.children,
                                     self.roots, self.value, base)

    def forest_sum(self, x: np.ndarray) -> np.ndarray:
        """Every tree's leaf values summed, per row of `x` (float32) and class."""
        return tree_walk.forest_sum(x, self.feature, self.threshold, self.children,
                                    self.roots, self.value)


def _hist_tree(predictor: Any) -> tuple[np.ndarray, ...]:
    n = predictor.nodes
    return (n["left"], n["right"], n["feature_idx"], n["num_threshold"],
            n["is_leaf"].astype(bool), n["value"])


def _sklearn_tree(tree: Any, n_classes: int) -> tuple[np.ndarray, ...]:
    """A fitted `sklearn.tree` structure's nodes; its class values as the estimator reads them."""
    is_leaf = tree.children_left < 0
    return (tree.children_left, tree.children_right, tree.feature, tree.threshold, is_leaf,
            tree.value[:, 0, :n_classes].astype(np.float64))


def _frame_values(model: Any, x: Any) -> np.ndarray | None:
    """`x` as float64 when it is a frame of exactly the model's fitted columns
    (`offline.features.frame_values`), or a float64 matrix of as many columns for a model
    fitted without column names (what scikit-learn's checks would return for either)."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return frame_values(x, names)
    if (type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == 2 and len(x)
            and x.shape[1] == getattr(model, "n_features_in_", -1)):
        return x
    return None


def _float32_rows(model: Any, x: Any, validate: Callable[[Any], Any]) -> np.ndarray | None:
    """`x` as the C-ordered float32 rows a fitted tree compares (None: not all finite)."""
    xv = _frame_values(model, x)
    xv = validate(x) if xv is None else xv.astype(np.float32)
    if not isinstance(xv, np.ndarray) or not np.isfinite(xv).all():
        return None
    return np.ascontiguousarray(xv, dtype=np.float32)


def _forest_proba(model: Any, fallback: Callable) -> Callable:
    packed = PackedTrees.pack([_sklearn_tree(e.tree_, model.n_classes_)
                               for e in model.estimators_])
    n_trees = len(model.estimators_)

    def predict_proba(x: Any) -> np.ndarray:
        xv = _float32_rows(model, x, model._validate_X_predict)
        if xv is None:
            return fallback(x)
        return packed.forest_sum(xv) / n_trees

    return predict_proba


def _tree_proba(model: Any, fallback: Callable) -> Callable:
    packed = PackedTrees.pack([_sklearn_tree(model.tree_, model.n_classes_)])

    def predict_proba(x: Any, check_input: bool = True) -> np.ndarray:
        xv = _float32_rows(model, x, lambda v: model._validate_X_predict(v, check_input))
        if xv is None:
            return fallback(x, check_input)
        return packed.forest_sum(xv)

    return predict_proba


def _hist_raw(model: Any, packed: list[PackedTrees], fallback: Callable) -> Callable:
    def raw_predict(x: Any, n_threads: int | None = None) -> np.ndarray:
        if getattr(model, "_in_fit", False):
            return fallback(x, n_threads)
        xv = _frame_values(model, x)
        xv = model._preprocess_X(x, reset=False) if xv is None else xv
        if not isinstance(xv, np.ndarray) or not np.isfinite(xv).all():
            return fallback(x, n_threads)
        base = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
        xv = np.ascontiguousarray(xv, dtype=np.float64)
        raw = np.empty((xv.shape[0], len(packed)), dtype=np.float64, order="F")
        for k, trees in enumerate(packed):
            # the baseline, then iteration after iteration: scikit-learn's order of sums
            raw[:, k] = trees.boosted_sum(xv, float(base[k if base.size > 1 else 0]))
        return raw

    return raw_predict


def _final_step(model: Any) -> Any:
    """A one-step pipeline's estimator (the pipeline adds ~35 us a call and nothing else)."""
    if isinstance(model, Pipeline) and len(model.steps) == 1:
        return model.steps[0][1]
    return model


def _soft_vote(model: VotingClassifier) -> None:
    """scikit-learn's soft vote (weighted mean of the members' probabilities, the class of the
    largest) without its per-call checks; the label decoding (`LabelEncoder`, ~0.3-0.7 ms a
    call) is its `classes_` taken at the argmax, which is what the encoder returns."""
    members = [_final_step(e) for e in model.estimators_]
    weights = model._weights_not_none
    classes = model.le_.classes_
    fallback_proba, fallback_predict = model.predict_proba, model.predict

    def predict_proba(x: Any) -> np.ndarray:
        if not len(x):
            return fallback_proba(x)  # scikit-learn refuses no rows
        return np.average(np.asarray([m.predict_proba(x) for m in members]), axis=0,
                          weights=weights)

    def predict(x: Any) -> np.ndarray:
        if not len(x):
            return fallback_predict(x)
        return classes[np.argmax(predict_proba(x), axis=1)]

    model.predict_proba, model.predict = predict_proba, predict


def _speed_up_one(model: Any) -> bool:
    """Replace one estimator's prediction method by the fast one; False if not supported
    (or not fitted: e.g. the prototype `estimator_` of a bagging ensemble)."""
    try:
        return _pack_and_patch(model)
    except AttributeError:
        return False


def _pack_and_patch(model: Any) -> bool:
    if isinstance(model, (RandomForestClassifier, ExtraTreesClassifier)):
        if model.n_outputs_ != 1:
            return False
        model.predict_proba = _forest_proba(model, model.predict_proba)
        return True
    if isinstance(model, (DecisionTreeClassifier, ExtraTreeClassifier)):
        if model.n_outputs_ != 1:
            return False
        model.predict_proba = _tree_proba(model, model.predict_proba)
        return True
    if isinstance(model, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        predictors = model._predictors
        if getattr(model, "_preprocessor", None) is not None or any(
                p.nodes["is_categorical"].any() for it in predictors for p in it):
            return False  # categorical columns are reordered before the trees see them
        per_output = [PackedTrees.pack([_hist_tree(it[k]) for it in predictors])
                      for k in range(model.n_trees_per_iteration_)]
        model._raw_predict = _hist_raw(model, per_output, model._raw_predict)
        return True
    return False


def speed_up(obj: Any) -> int:
    """Speed up every supported fitted tree model reachable from `obj`, the soft votes over
    them and the linear pipelines `offline.fast_linear` takes; how many were."""
    seen: set[int] = set()

    def visit(o: Any) -> int:
        if id(o) in seen:
            return 0
        seen.add(id(o))
        if isinstance(o, dict):
            return sum(visit(v) for v in o.values())
        if isinstance(o, (list, tuple)):
            return sum(visit(v) for v in o)
        if not isinstance(o, BaseEstimator):
            return 0
        if _speed_up_one(o) or speed_up_linear(o):
            return 1
        inside = sum(visit(v) for k, v in vars(o).items() if k.endswith("_") or k == "steps")
        if isinstance(o, VotingClassifier) and o.voting == "soft" and hasattr(o, "le_"):
            _soft_vote(o)  # its members first: it calls their (patched) methods
            inside += 1
        return inside

    patched = visit(obj)
    if patched:
        tree_walk.compile_now()
    return patched
