"""Next-year forecast from the first purchase: a hurdle model.

``p_repeat`` = P(orders >= 1) from a classifier; ``expected_orders`` and ``expected_spend`` from
Poisson-loss regressors (calibrated on the mean by construction: the cohort total is the sum of
predictions). Both regressors are gradient-boosted trees with strong regularisation; the data
are small.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

OUTPUTS = ("p_repeat", "expected_orders", "expected_spend")


class NextYearForecaster(BaseEstimator):
    """Fit on first-purchase features and (orders, spend) labels; predict the three outputs."""

    def __init__(self, learning_rate: float = 0.05, max_iter: int = 150,
                 max_leaf_nodes: int = 7, min_samples_leaf: int = 40,
                 l2_regularization: float = 1.0, random_state: int = 0) -> None:
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def _params(self) -> dict[str, float | int]:
        return {"learning_rate": self.learning_rate, "max_iter": self.max_iter,
                "max_leaf_nodes": self.max_leaf_nodes, "min_samples_leaf": self.min_samples_leaf,
                "l2_regularization": self.l2_regularization, "random_state": self.random_state,
                "early_stopping": False}

    def fit(self, x: pd.DataFrame, orders: np.ndarray, spend: np.ndarray) -> NextYearForecaster:
        orders = np.asarray(orders, dtype=float)
        spend = np.asarray(spend, dtype=float)
        self.columns_ = list(x.columns)
        self.repeat_ = HistGradientBoostingClassifier(**self._params()).fit(x, orders >= 1)
        self.orders_ = HistGradientBoostingRegressor(loss="poisson", **self._params()).fit(
            x, orders)
        self.spend_ = HistGradientBoostingRegressor(loss="poisson", **self._params()).fit(
            x, spend)
        return self

    def predict(self, x: pd.DataFrame) -> pd.DataFrame:
        x = x[self.columns_]
        return pd.DataFrame({
            "p_repeat": self.repeat_.predict_proba(x)[:, 1],
            "expected_orders": self.orders_.predict(x),
            "expected_spend": self.spend_.predict(x),
        }, index=x.index)
