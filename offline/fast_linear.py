"""Small-batch inference for the forecaster's linear pipeline, without scikit-learn's per-call
machinery.

The log-spend part of the forecast (`offline.forecast.linear_pipeline`: log1p on some columns
-> winsorise -> standardise -> ridge) is four numpy operations on a batch of first purchases,
but scikit-learn's ColumnTransformer, validation and output wrappers cost ~1.8 ms a call,
whatever the batch size: more than every other part of the forecast on a micro-batch.
`speed_up_linear(pipeline)` patches such a fitted pipeline's `predict` with the same
operations on the same arrays, in the same order, so the same numbers (bit for bit:
tests/offline/test_offline_fast_linear.py). Anything else (other steps, transformer weights,
sparse output, an empty frame, a frame without exactly the fitted columns) is left to
scikit-learn. The patched method lives on the instance: refit or pickle the original pipeline,
not a sped-up one.

>>> import numpy as np, pandas as pd
>>> from offline.forecast import linear_pipeline
>>> rng = np.random.default_rng(0)
>>> x = pd.DataFrame({"basket_value": rng.lognormal(5, 1, 50), "hour": rng.uniform(8, 18, 50)})
>>> pipe = linear_pipeline(list(x.columns), alpha=1.0).fit(x, rng.normal(size=50))
>>> expected = pipe.predict(x)
>>> speed_up_linear(pipe)
True
>>> bool(np.array_equal(pipe.predict(x), expected))
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from offline.features import frame_values
from offline.forecast import Winsorizer

Step = Callable[[np.ndarray], np.ndarray]


def _column_step(ct: ColumnTransformer, names: list[str]) -> Step | None:
    """The transformer's output from the input matrix: each part's function on its columns,
    side by side in the fitted order (what `ColumnTransformer.transform` stacks)."""
    if ct.sparse_output_ or ct.transformer_weights:
        return None
    parts: list[tuple[Callable[[np.ndarray], np.ndarray] | None, np.ndarray]] = []
    for name, fitted, columns in ct.transformers_:
        if fitted == "drop" or len(columns) == 0:
            continue
        if name == "remainder" and ct.remainder == "passthrough":
            func = None
        elif isinstance(fitted, FunctionTransformer) and fitted.func is not None \
                and not fitted.kw_args and not fitted.validate:
            func = fitted.func
        else:
            return None
        if not all(isinstance(c, str) and c in names for c in columns):
            return None
        parts.append((func, np.array([names.index(c) for c in columns], dtype=np.intp)))

    def transform(a: np.ndarray) -> np.ndarray:
        return np.hstack([a[:, idx] if func is None else np.asarray(func(a[:, idx]))
                          for func, idx in parts])

    return transform


def _numpy_step(step: Any) -> Step | None:
    if type(step) is Winsorizer:  # exactly these classes: a subclass may transform otherwise
        return step.transform
    if type(step) is StandardScaler:
        mean, scale = step.mean_, step.scale_

        def standardise(z: np.ndarray) -> np.ndarray:
            z = np.array(z, dtype=np.float64)  # scikit-learn works on a copy, in place
            if step.with_mean:
                z -= mean
            if step.with_std:
                z /= scale
            return z

        return standardise
    return None


def speed_up_linear(pipeline: Any) -> bool:
    """Patch a fitted pipeline's `predict` (ColumnTransformer of function transformers,
    winsorizer / standard scaler steps, a ridge or linear regression at the end); False, and
    nothing changed, for any other pipeline."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        return False
    names = list(getattr(pipeline, "feature_names_in_", []))
    first, *middle, last = [step for _, step in pipeline.steps]
    head = _column_step(first, names) if type(first) is ColumnTransformer and names else None
    steps = [_numpy_step(s) for s in middle]
    if head is None or None in steps \
            or type(last) not in (Ridge, LinearRegression) or np.ndim(last.coef_) != 1:
        return False
    coef, intercept = last.coef_, last.intercept_
    fallback = pipeline.predict

    def predict(x: Any, **params: Any) -> np.ndarray:
        a = None if params else frame_values(x, names)
        if a is None:
            return fallback(x, **params)  # scikit-learn checks (and refuses no rows)
        z = head(a)
        if not np.isfinite(z).all():
            return fallback(x)  # scikit-learn names the problem
        for step in steps:
            z = step(z)
        return z @ coef + intercept

    pipeline.predict = predict
    return True
