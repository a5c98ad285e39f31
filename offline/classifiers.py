"""Segment classifiers from the first purchase: the seed's model set, gradient boosting, a vote.

Each model is a :class:`~sklearn.pipeline.Pipeline` (scaling where the model needs it), tuned by
a small cross-validated grid on the fit customers; the one with the best cross-validated macro-F1
is served. Held-out accuracy and macro-F1 of every model go into the card and the report.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def candidate_models(seed: int = 0) -> dict[str, tuple[Pipeline, dict[str, list[Any]]]]:
    """name -> (pipeline, parameter grid). Kept small: training must stay fast."""
    return {
        "svc": (make_pipeline(StandardScaler(), SVC(random_state=seed)),
                {"svc__C": [1.0, 10.0], "svc__gamma": ["scale"]}),
        "logistic_regression": (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            {"logisticregression__C": [0.1, 1.0, 10.0]}),
        "k_neighbors": (make_pipeline(StandardScaler(), KNeighborsClassifier()),
                        {"kneighborsclassifier__n_neighbors": [15, 40]}),
        "decision_tree": (make_pipeline(DecisionTreeClassifier(random_state=seed)),
                          {"decisiontreeclassifier__max_depth": [4, 8],
                           "decisiontreeclassifier__min_samples_leaf": [10]}),
        "random_forest": (make_pipeline(RandomForestClassifier(
            n_estimators=150, random_state=seed, n_jobs=1)),
            {"randomforestclassifier__min_samples_leaf": [3, 10]}),
        "gradient_boosting": (make_pipeline(HistGradientBoostingClassifier(
            random_state=seed, early_stopping=False)),
            {"histgradientboostingclassifier__max_iter": [100],
             "histgradientboostingclassifier__learning_rate": [0.05],
             "histgradientboostingclassifier__max_leaf_nodes": [15]}),
    }


def fit_classifiers(x: pd.DataFrame, y: np.ndarray, seed: int = 0, cv: int = 3,
                    progress: bool = True) -> dict[str, dict[str, Any]]:
    """Tune every candidate and a soft vote of the best three that give probabilities (SVC does
    not: its ``probability=True`` is deprecated); return fitted models + CV scores."""
    folds = StratifiedKFold(cv, shuffle=True, random_state=seed)
    out: dict[str, dict[str, Any]] = {}
    items = list(candidate_models(seed).items())
    for name, (pipe, grid) in tqdm(items, desc="segment classifiers", disable=not progress):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search = GridSearchCV(pipe, grid, scoring="f1_macro", cv=folds, n_jobs=2).fit(x, y)
        out[name] = {"model": search.best_estimator_, "cv_macro_f1": float(search.best_score_),
                     "params": {k: _plain(v) for k, v in search.best_params_.items()}}
        log.info("event=classifier name=%s cv_macro_f1=%.3f", name, search.best_score_)
    with_proba = [n for n in out if hasattr(out[n]["model"], "predict_proba")]
    best3 = sorted(with_proba, key=lambda n: -out[n]["cv_macro_f1"])[:3]
    vote = VotingClassifier([(n, clone(out[n]["model"])) for n in best3], voting="soft")
    from sklearn.model_selection import cross_val_score
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv_score = cross_val_score(vote, x, y, scoring="f1_macro", cv=folds, n_jobs=2).mean()
    out["soft_vote"] = {"model": vote.fit(x, y), "cv_macro_f1": float(cv_score),
                        "params": {"members": best3}}
    log.info("event=classifier name=soft_vote cv_macro_f1=%.3f members=%s", cv_score, best3)
    return out


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def evaluate_classifiers(models: dict[str, dict[str, Any]], x: pd.DataFrame,
                         y: np.ndarray) -> dict[str, dict[str, Any]]:
    """Held-out accuracy, macro-F1 and confusion matrix of every model."""
    out = {}
    for name, m in models.items():
        pred = m["model"].predict(x)
        out[name] = {
            "accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro")),
            "cv_macro_f1": m["cv_macro_f1"],
            "params": m["params"],
            "confusion_matrix": confusion_matrix(y, pred, labels=np.unique(
                np.r_[y, pred])).tolist(),
        }
    return out


def serial(model: Any) -> Any:
    """Set every ``n_jobs`` inside a fitted model to 1: a served model predicts small batches,
    where thread start-up costs more than it saves."""
    params = {k: 1 for k in model.get_params(deep=True) if k.endswith("n_jobs")}
    return model.set_params(**params) if params else model


def best_model_name(models: dict[str, dict[str, Any]]) -> str:
    """The model with the best cross-validated macro-F1 (held-out data never chooses)."""
    return max(models, key=lambda n: models[n]["cv_macro_f1"])
