"""`basketcast train`: the whole offline job, step by step, into a bundle with its card/report."""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from offline.bundle import Bundle, save_bundle
from offline.categories import ProductCategoriser, product_table
from offline.classifiers import (
    best_model_name,
    evaluate_classifiers,
    fit_classifiers,
    serial,
)
from offline.clean import clean_log
from offline.dataset import build_customer_table, fit_history
from offline.events import first_purchases, invoices_from_lines
from offline.features import feature_names
from offline.forecast import FirstBasketBaseline, NextYearForecaster
from offline.labels import cohort_mask, is_holdout
from offline.load import read_log
from offline.metrics import (
    bootstrap_intervals,
    elbow_k,
    forecast_metrics,
    meets_target,
)
from offline.segments import (
    CustomerSegmenter,
    behaviour_table,
    segment_labels,
)
from schemas.invoice import InvoiceEvent

log = logging.getLogger(__name__)

#: the first-year behaviour clustered into segments (see docs: basket shape is what the first
#: purchase can reveal; frequency is reported in the profiles)
SEGMENT_FEATURES = ["log_mean_basket", "log_basket_lines", "log_max_basket"]
STEPS = ("load", "clean", "events", "categories", "customers", "segments", "classifiers",
         "forecast", "seed protocol", "bundle", "report")


@dataclass
class TrainConfig:
    data: Path
    out: Path = Path("models/latest")
    horizon_days: int = 365
    seed: int = 0
    protocol: str = "first-purchase"
    progress: bool = True
    report: bool = True
    segment_k_range: tuple[int, int] = (3, 8)
    category_k_range: tuple[int, int] = (3, 10)


@dataclass
class TrainResult:
    bundle: Bundle
    card: dict[str, Any]
    artifacts: dict[str, Any] = field(default_factory=dict)


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import joblib
    import nltk
    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__, "numpy": np.__version__, "joblib": joblib.__version__,
            "nltk": nltk.__version__}


def line_categories(lines: pd.DataFrame, categoriser: ProductCategoriser) -> pd.Series:
    """Category per line (known codes by lookup, unseen ones from description and price)."""
    return pd.Series(
        [categoriser.category_of(s, d if isinstance(d, str) else None, p)
         for s, d, p in zip(lines["stock_code"], lines["description"].astype(object),
                            lines["unit_price"], strict=True)],
        index=lines.index, dtype="int64")


class TrainError(ValueError):
    """The log cannot train a bundle (e.g. too short for the horizon); the message says why."""


#: the fewest cohort customers to fit / to evaluate the forecast on
MIN_COHORT_FIT, MIN_COHORT_EVAL = 50, 10


def check_cohort(events: list[InvoiceEvent], horizon_days: int, seed: int) -> None:
    """Refuse a log whose forecast cohort is too small, saying what would help."""
    n_fit = n_eval = span = 0
    if events:
        start, end = events[0].invoiced_at, events[-1].invoiced_at
        span = (end - start).days
        firsts = first_purchases(events)
        at = pd.Series([e.invoiced_at for e in firsts.values()], dtype="datetime64[us]")
        cohort = cohort_mask(at, start, end, horizon_days).to_numpy()
        hold = np.array([is_holdout(c, seed) for c in firsts], dtype=bool)
        n_fit, n_eval = int((cohort & ~hold).sum()), int((cohort & hold).sum())
    if n_fit >= MIN_COHORT_FIT and n_eval >= MIN_COHORT_EVAL:
        return
    raise TrainError(
        f"forecast cohort too small: {n_fit} fit / {n_eval} held-out customers (need "
        f"{MIN_COHORT_FIT} / {MIN_COHORT_EVAL}); the log spans {span} days and a cohort needs "
        f"first purchases >= 90 days after its start and >= {horizon_days} days before its end"
        f" - use a longer log or a shorter --horizon-days")


def train(cfg: TrainConfig) -> TrainResult:
    """Run every step; write the bundle (and report) into ``cfg.out``."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    steps = [s for s in STEPS if cfg.protocol == "seed" or s != "seed protocol"]
    bar = tqdm(total=len(steps), desc="train", disable=not cfg.progress, unit="step")

    def step(name: str, start: float) -> float:
        timings[name] = round(time.perf_counter() - start, 3)
        log.info("event=step_done step=%s seconds=%.2f", name, timings[name])
        bar.set_postfix_str(name)
        bar.update(1)
        return time.perf_counter()

    t = time.perf_counter()
    raw = read_log(cfg.data)
    t = step("load", t)
    cleaned = clean_log(raw)
    t = step("clean", t)
    events = invoices_from_lines(raw[raw["customer_id"].notna()])
    check_cohort(events, cfg.horizon_days, cfg.seed)
    t = step("events", t)
    categoriser = ProductCategoriser(k_range=cfg.category_k_range, random_state=cfg.seed)
    categoriser.fit(product_table(cleaned.product_rows))
    t = step("categories", t)
    table = build_customer_table(events, categoriser, cfg.horizon_days, cfg.seed)
    ids, x, labels = table.ids, table.features, table.labels
    t = step("customers", t)

    cats = line_categories(cleaned.customer_lines, categoriser)
    behaviour = behaviour_table(cleaned.customer_lines, ids, cats, categoriser.n_categories_,
                                cfg.horizon_days)
    segmenter = CustomerSegmenter(k_range=cfg.segment_k_range, random_state=cfg.seed)
    try:
        segmenter.fit(behaviour[SEGMENT_FEATURES])
    except ValueError as exc:
        raise TrainError(f"cannot segment customers: {exc}") from exc
    seg = segmenter.labels_
    profiles = segmenter.profiles(behaviour)
    seg_names = segment_labels(profiles, behaviour, categoriser.category_names())
    t = step("segments", t)

    hold = ids["holdout"].to_numpy()
    models = fit_classifiers(x[~hold], seg[~hold], seed=cfg.seed, progress=cfg.progress)
    clf_metrics = evaluate_classifiers(models, x[hold], seg[hold])
    best = best_model_name(models)
    t = step("classifiers", t)

    cohort = ids["in_cohort"].to_numpy()
    fit_m, eval_m = cohort & ~hold, cohort & hold
    history = fit_history(table)  # the repeat classifier's extra rows, no held-out customer's
    forecaster = NextYearForecaster(random_state=cfg.seed).fit(
        x[fit_m], labels["orders"][fit_m], labels["spend"][fit_m], history)
    pred = forecaster.predict(x[eval_m])
    y_spend, y_orders = labels["spend"][eval_m], labels["orders"][eval_m]
    first_basket = x["basket_value"][eval_m]
    fmetrics = forecast_metrics(y_spend, y_orders, first_basket, pred["p_repeat"],
                                pred["expected_orders"], pred["expected_spend"])
    # how far each held-out figure could move with other customers of the same kind
    intervals = bootstrap_intervals(y_spend, y_orders, first_basket, pred["p_repeat"],
                                    pred["expected_spend"], seed=cfg.seed)
    parts = forecaster.parts(x[eval_m])
    base = FirstBasketBaseline().fit(x[fit_m], labels["orders"][fit_m], labels["spend"][fit_m])
    base_pred = base.predict(x[eval_m])
    variants = {
        "first_basket_glm (baseline model)": forecast_metrics(
            y_spend, y_orders, first_basket, base_pred["p_repeat"],
            base_pred["expected_orders"], base_pred["expected_spend"]),
    }
    variants |= {
        name: forecast_metrics(y_spend, y_orders, first_basket, parts["p_repeat"],
                               parts["expected_orders"], spend)
        for name, spend in {
            "poisson_gbm": parts["spend_poisson"],
            "hurdle_lognormal": parts["spend_hurdle"],
            f"blend w={forecaster.hurdle_weight} (served)": pred["expected_spend"],
        }.items()
    }
    t = step("forecast", t)

    bundle = Bundle(categoriser=categoriser, segment_model=serial(models[best]["model"]),
                    segment_labels=seg_names, forecaster=forecaster,
                    feature_columns=feature_names(categoriser.n_categories_),
                    horizon_days=cfg.horizon_days)
    card: dict[str, Any] = {
        "data": {"path": str(cfg.data), "sha256": file_fingerprint(cfg.data),
                 "rows": len(raw), "invoices": int(raw["invoice_id"].nunique()),
                 "period": [str(raw["invoiced_at"].min()), str(raw["invoiced_at"].max())],
                 "credit": "UCI Machine Learning Repository, Online Retail II (Daqing Chen, "
                           "2019), CC BY 4.0"},
        "cleaning": cleaned.counts,
        "versions": _versions(),
        "seed": cfg.seed, "protocol": cfg.protocol,
        "customers": {"with_first_purchase": len(ids), "cohort": int(cohort.sum()),
                      "cohort_fit": int(fit_m.sum()), "cohort_eval": int(eval_m.sum()),
                      "holdout": int(hold.sum())},
        "categories": {"k": categoriser.k_, "elbow_k": elbow_k(categoriser.inertia_),
                       "chosen_by": "best silhouette (ties: smaller k)",
                       "silhouette": categoriser.silhouette_,
                       "inertia": categoriser.inertia_, "keywords": len(categoriser.keywords_),
                       "names": categoriser.category_names(),
                       "sizes": categoriser.category_sizes_},
        "segments": {"k": segmenter.k_, "elbow_k": elbow_k(segmenter.inertia_),
                     "features": SEGMENT_FEATURES,
                     "silhouette": segmenter.silhouette_, "inertia": segmenter.inertia_,
                     "chosen_by": "best silhouette over the k range (ties: smaller k); the "
                                  "elbow k of the inertia curve is reported alongside",
                     "stability_ari": segmenter.stability_ari_, "labels": seg_names,
                     "profiles": profiles.round(4).reset_index(names="segment")
                     .to_dict("records")},
        "classifiers": {"served": best, "models": clf_metrics},
        "forecast": {"model": "blend of a hurdle (GBM repeat x lognormal ridge) and a Poisson GBM",
                     "params": forecaster.get_params(), "holdout": fmetrics,
                     "holdout_ci95": intervals,
                     "repeat_history": {
                         "rows": len(history),
                         "later_invoices": int((history["prior_orders"] > 0).sum())
                         if len(history) else 0,
                         "customers": int(history["customer_id"].nunique())
                         if len(history) else 0},
                     "variants_holdout": variants},
        "targets": {
            "gini_lift>=1.05": meets_target("gini_lift", fmetrics["gini_lift"]),
            "repeat_auc>=0.65": meets_target("repeat_auc", fmetrics["repeat_auc"]),
            "decile_mape<=0.25": meets_target("decile_mape", fmetrics["decile_mape"]),
            "cohort_total_within_15pct": meets_target("cohort_total_ratio",
                                                      fmetrics["cohort_total_ratio"]),
            "classifier_accuracy>=0.80": clf_metrics[best]["accuracy"] >= 0.80,
        },
    }
    if cfg.protocol == "seed":
        from offline.seed_protocol import SeedProtocolError, run_seed_protocol

        try:
            card["seed_protocol"] = run_seed_protocol(raw, seed=cfg.seed, progress=cfg.progress)
            card["targets"]["seed_protocol: ours beats the seed's soft vote"] = bool(
                card["seed_protocol"]["ours_beats_seed"])
        except SeedProtocolError as exc:
            log.warning("event=seed_protocol_skipped reason=%s", exc)
            card["seed_protocol_skipped"] = str(exc)
        t = step("seed protocol", t)
    t = step("bundle", t)
    card["timings_seconds"] = timings
    card["training_seconds"] = round(time.perf_counter() - t0, 2)
    bundle = save_bundle(bundle, cfg.out, card)
    artifacts = {"out": cfg.out, "raw": raw, "cleaned": cleaned, "table": table,
                 "behaviour": behaviour, "segmenter": segmenter, "models": models,
                 "eval_pred": pred,
                 "eval_mask": eval_m}
    result = TrainResult(bundle=bundle, card=card, artifacts=artifacts)
    if cfg.report:
        from offline.report import write_report

        write_report(result, cfg.out / "report.html")
    step("report", t)
    bar.close()
    log.info("event=train_done seconds=%.1f model_version=%s", time.perf_counter() - t0,
             bundle.model_version)
    return result
