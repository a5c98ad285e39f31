"""Cross-validation of forecaster variants on the FIT cohort customers only (never the held-out).

How the served forecaster's settings are chosen: repeated stratified 5-fold CV (on ``repeat``)
over the cohort customers the split leaves for fitting; every variant sees the same folds, and the
paired difference to the first variant is reported with its standard error.

    .venv/bin/python -m offline.forecast_cv [--data LOG] [--repeats 3] [--seed 0] [--cv-seed 0]

``--seed`` is the split's (and the categoriser's) seed, as in ``basketcast train``; ``--cv-seed``
only shuffles the folds.

>>> sorted(VARIANTS)
['depth-2 repeat classifier (before)', 'stumps repeat classifier (served)']
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from offline.forecast import NextYearForecaster
from offline.metrics import forecast_metrics

#: name -> NextYearForecaster parameters (the first one is the reference of the differences)
VARIANTS: dict[str, dict[str, float | int]] = {
    "depth-2 repeat classifier (before)": {"repeat_max_depth": 2, "repeat_learning_rate": 0.03,
                                           "repeat_min_samples_leaf": 50},
    "stumps repeat classifier (served)": {},
}
KEYS = ("repeat_auc", "repeat_pr_auc", "normalized_gini", "gini_lift", "decile_mape",
        "cohort_total_ratio", "spearman_spend", "spearman_orders")


def cross_validate(x: pd.DataFrame, labels: pd.DataFrame,
                   variants: dict[str, dict[str, float | int]] | None = None,
                   repeats: int = 3, seed: int = 0) -> pd.DataFrame:
    """Per-fold metrics of each variant: one row per (variant, repeat, fold)."""
    variants = VARIANTS if variants is None else variants
    x = x.reset_index(drop=True)
    labels = labels.reset_index(drop=True)
    rows = []
    for rep in range(repeats):
        folds = StratifiedKFold(5, shuffle=True, random_state=seed + rep)
        for k, (tr, te) in enumerate(folds.split(x, labels["repeat"])):
            for name, params in variants.items():
                f = NextYearForecaster(**params).fit(
                    x.iloc[tr], labels["orders"].iloc[tr], labels["spend"].iloc[tr])
                p = f.predict(x.iloc[te])
                m = forecast_metrics(labels["spend"].iloc[te], labels["orders"].iloc[te],
                                     x["basket_value"].iloc[te], p["p_repeat"],
                                     p["expected_orders"], p["expected_spend"])
                rows.append({"variant": name, "repeat": rep, "fold": k,
                             **{key: m[key] for key in KEYS}})
    return pd.DataFrame(rows)


def summarise(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean per variant, and the paired mean difference to the first variant +- its SE."""
    mean = folds.groupby("variant", sort=False)[list(KEYS)].mean()
    ref = folds[folds["variant"] == mean.index[0]].set_index(["repeat", "fold"])
    out = mean.copy()
    for name in mean.index[1:]:
        d = folds[folds["variant"] == name].set_index(["repeat", "fold"])[["repeat_auc"]] - \
            ref[["repeat_auc"]]
        out.loc[name, "d_auc"] = float(d["repeat_auc"].mean())
        out.loc[name, "d_auc_se"] = float(d["repeat_auc"].std(ddof=1) / np.sqrt(len(d)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from offline.categories import ProductCategoriser, product_table
    from offline.clean import clean_log
    from offline.dataset import build_customer_table
    from offline.events import invoices_from_lines
    from offline.load import read_log

    ap = argparse.ArgumentParser(prog="python -m offline.forecast_cv")
    ap.add_argument("--data", default="/work/shared/data/online_retail_ii.parquet")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cv-seed", type=int, default=0)
    ap.add_argument("--horizon-days", type=int, default=365)
    args = ap.parse_args(argv)
    raw = read_log(Path(args.data))
    cleaned = clean_log(raw)
    events = invoices_from_lines(raw[raw["customer_id"].notna()])
    categoriser = ProductCategoriser(random_state=args.seed).fit(
        product_table(cleaned.product_rows))
    table = build_customer_table(events, categoriser, args.horizon_days, args.seed)
    fit = (table.ids["in_cohort"] & ~table.ids["holdout"]).to_numpy()
    folds = cross_validate(table.features[fit], table.labels[fit], repeats=args.repeats,
                           seed=args.cv_seed)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"{int(fit.sum())} fit cohort customers, {args.repeats} x 5-fold CV")
        print(summarise(folds).round(4).T)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
