"""Next-year forecast from the first purchase: a hurdle model blended with a Poisson GBM.

- ``p_repeat``: P(orders >= 1), an additive gradient-boosted classifier (depth-1 stumps, so no
  interactions: small data; large leaves). Chosen by repeated 5-fold CV on the fit customers:
  stumps 0.641 AUC vs 0.627 for depth 2, on a plateau over learning rate / iterations / leaf
  size; product- and country-level repeat rates (out-of-fold, smoothed), wholesale, month-end
  and Christmas-item features did not help.
- ``expected_orders``: a Poisson-loss gradient-boosted regressor.
- ``expected_spend``: ``w * p_repeat * E[spend | repeat] + (1 - w) * poisson_gbm``, where
  E[spend | repeat] is a lognormal (ridge regression on log spend over log-scaled, winsorised
  features, with the variance correction exp(sigma^2/2)) and the Poisson GBM is fitted on spend
  directly. The hurdle ranks better; the Poisson GBM is calibrated on the mean; the blend keeps
  most of both. The train step reports the held-out metrics of each part (``variants``).

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> x = pd.DataFrame({"basket_value": rng.lognormal(5, 1, 300),
...                   "n_lines": rng.integers(1, 30, 300)})
>>> orders = rng.poisson(x["basket_value"] / 200)
>>> spend = orders * x["basket_value"]
>>> f = NextYearForecaster(max_iter=20).fit(x, orders, spend)
>>> list(f.predict(x.head(2)).columns)
['p_repeat', 'expected_orders', 'expected_spend']
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

OUTPUTS = ("p_repeat", "expected_orders", "expected_spend")
#: heavy-tailed counts and amounts: log1p before a linear model
LOG_COLUMNS = (
    "basket_value", "mean_unit_price", "max_unit_price", "min_unit_price",
    "median_line_quantity", "max_line_quantity", "max_line_value", "n_lines", "n_products",
    "n_negative_lines", "n_nonproduct_lines", "price_ratio",
)


class Winsorizer(BaseEstimator, TransformerMixin):
    """Clip every column to its [q, 1 - q] training quantiles (outliers cannot extrapolate)."""

    def __init__(self, q: float = 0.01) -> None:
        self.q = q

    def fit(self, x: np.ndarray, y: object = None) -> Winsorizer:
        a = np.asarray(x, dtype=float)
        self.low_ = np.nanquantile(a, self.q, axis=0)
        self.high_ = np.nanquantile(a, 1 - self.q, axis=0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=float), self.low_, self.high_)


def _log1p_nonneg(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.clip(np.asarray(x, dtype=float), 0, None))


def linear_pipeline(columns: list[str], alpha: float) -> Pipeline:
    """log1p on heavy-tailed columns -> winsorise -> standardise -> ridge."""
    logs = [c for c in columns if c in LOG_COLUMNS]
    pre = ColumnTransformer(
        [("log", FunctionTransformer(_log1p_nonneg, feature_names_out="one-to-one"), logs)],
        remainder="passthrough", verbose_feature_names_out=False)
    return make_pipeline(pre, Winsorizer(), StandardScaler(), Ridge(alpha=alpha))


class NextYearForecaster(BaseEstimator):
    """Fit on first-purchase features and (orders, spend) labels; predict the three outputs.

    Parameters
    ----------
    hurdle_weight : weight ``w`` of the hurdle (lognormal) part of ``expected_spend``.
    ridge_alpha : regularisation of the log-spend ridge regression.
    learning_rate, max_iter, max_leaf_nodes, min_samples_leaf, l2_regularization : of the
        Poisson GBMs.
    repeat_max_depth, repeat_learning_rate, repeat_max_iter, repeat_min_samples_leaf : of the
        repeat classifier (stumps by default: an additive model).
    """

    def __init__(self, hurdle_weight: float = 0.7, ridge_alpha: float = 10.0,
                 learning_rate: float = 0.05, max_iter: int = 150, max_leaf_nodes: int = 7,
                 min_samples_leaf: int = 40, l2_regularization: float = 1.0,
                 repeat_max_depth: int = 1, repeat_learning_rate: float = 0.05,
                 repeat_max_iter: int = 200, repeat_min_samples_leaf: int = 100,
                 random_state: int = 0) -> None:
        self.hurdle_weight = hurdle_weight
        self.ridge_alpha = ridge_alpha
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.repeat_max_depth = repeat_max_depth
        self.repeat_learning_rate = repeat_learning_rate
        self.repeat_max_iter = repeat_max_iter
        self.repeat_min_samples_leaf = repeat_min_samples_leaf
        self.random_state = random_state

    def _gbm(self) -> dict[str, float | int]:
        return {"learning_rate": self.learning_rate, "max_iter": self.max_iter,
                "max_leaf_nodes": self.max_leaf_nodes, "min_samples_leaf": self.min_samples_leaf,
                "l2_regularization": self.l2_regularization, "random_state": self.random_state,
                "early_stopping": False}

    def fit(self, x: pd.DataFrame, orders: np.ndarray, spend: np.ndarray) -> NextYearForecaster:
        orders = np.asarray(orders, dtype=float)
        spend = np.asarray(spend, dtype=float)
        self.columns_ = list(x.columns)
        repeat = orders >= 1
        self.repeat_ = HistGradientBoostingClassifier(
            max_depth=self.repeat_max_depth, learning_rate=self.repeat_learning_rate,
            max_iter=self.repeat_max_iter, min_samples_leaf=self.repeat_min_samples_leaf,
            early_stopping=False, random_state=self.random_state).fit(x, repeat)
        self.orders_ = HistGradientBoostingRegressor(loss="poisson", **self._gbm()).fit(x, orders)
        self.spend_ = HistGradientBoostingRegressor(loss="poisson", **self._gbm()).fit(x, spend)
        pos = repeat & (spend > 0)
        if pos.sum() >= 2:
            log_spend = np.log(spend[pos])
            self.log_spend_ = linear_pipeline(self.columns_, self.ridge_alpha).fit(
                x[pos], log_spend)
            self.sigma2_ = float(np.var(log_spend - self.log_spend_.predict(x[pos])))
        else:  # degenerate tiny data: the hurdle part falls back to the mean
            self.log_spend_ = None
            self.sigma2_ = 0.0
            self.mean_repeat_spend_ = float(spend[pos].mean()) if pos.any() else 0.0
        return self

    def parts(self, x: pd.DataFrame) -> pd.DataFrame:
        """Every component: p_repeat, expected_orders, hurdle and Poisson spend."""
        x = x[self.columns_]
        p = self.repeat_.predict_proba(x)[:, 1]
        if self.log_spend_ is not None:
            cond = np.exp(self.log_spend_.predict(x) + self.sigma2_ / 2)
        else:
            cond = np.full(len(x), self.mean_repeat_spend_)
        return pd.DataFrame({
            "p_repeat": p,
            "expected_orders": self.orders_.predict(x),
            "spend_hurdle": p * cond,
            "spend_poisson": self.spend_.predict(x),
        }, index=x.index)

    def predict(self, x: pd.DataFrame) -> pd.DataFrame:
        parts = self.parts(x)
        w = self.hurdle_weight
        parts["expected_spend"] = w * parts["spend_hurdle"] + (1 - w) * parts["spend_poisson"]
        return parts[list(OUTPUTS)]


class FirstBasketBaseline(BaseEstimator):
    """The baseline: everything from the first basket's value alone (log-linear GLMs)."""

    def fit(self, x: pd.DataFrame, orders: np.ndarray, spend: np.ndarray) -> FirstBasketBaseline:
        from sklearn.linear_model import LogisticRegression, PoissonRegressor

        z = np.log1p(np.clip(x[["basket_value"]].to_numpy(dtype=float), 0, None))
        orders = np.asarray(orders, dtype=float)
        self.repeat_ = LogisticRegression().fit(z, orders >= 1)
        self.orders_ = PoissonRegressor(alpha=0.0).fit(z, orders)
        self.spend_ = PoissonRegressor(alpha=0.0, max_iter=1000).fit(z, np.asarray(spend, float))
        return self

    def predict(self, x: pd.DataFrame) -> pd.DataFrame:
        z = np.log1p(np.clip(x[["basket_value"]].to_numpy(dtype=float), 0, None))
        return pd.DataFrame({"p_repeat": self.repeat_.predict_proba(z)[:, 1],
                             "expected_orders": self.orders_.predict(z),
                             "expected_spend": self.spend_.predict(z)}, index=x.index)
