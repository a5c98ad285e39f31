"""Cross-validation of forecaster variants on the FIT cohort customers only (never the held-out).

How the served forecaster's settings are chosen: repeated stratified 5-fold CV (on ``repeat``)
over the cohort customers the split leaves for fitting; every variant sees the same folds, and the
paired difference to the first variant is reported with its standard error. The purchase history
(``CustomerTable.history``: later invoices, censored first purchases) only ever enters the
training folds: never a held-out customer's rows, nor any row of a test-fold customer.

    .venv/bin/python -m offline.forecast_cv [--data LOG] [--repeats 3] [--seed 0] [--cv-seed 0]

``--seed`` is the split's (and the categoriser's) seed, as in ``basketcast train``; ``--cv-seed``
only shuffles the folds.

>>> list(VARIANTS)[0]
'cohort-only stumps (before)'
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
    "cohort-only stumps (before)": {"repeat_history": False, "repeat_max_depth": 1},
    "history, depth 2, hurdle too": {"hurdle_uses_history": True},
    "history, depth 2, cohort-only hurdle (served)": {},
}
KEYS = ("repeat_auc", "repeat_pr_auc", "normalized_gini", "gini_lift", "decile_mape",
        "cohort_total_ratio", "spearman_spend", "spearman_orders")


def training_history(history: pd.DataFrame | None, customers: pd.Series | None,
                     test: np.ndarray) -> pd.DataFrame | None:
    """The history a training fold may use: no row of a test-fold customer."""
    if history is None or history.empty:
        return None
    if customers is None:
        raise ValueError("a history needs the customer ids of x to keep test folds out of it")
    return history[~history["customer_id"].isin(set(customers.iloc[test]))]


def cross_validate(x: pd.DataFrame, labels: pd.DataFrame,
                   variants: dict[str, dict[str, float | int]] | None = None,
                   repeats: int = 3, seed: int = 0, history: pd.DataFrame | None = None,
                   customers: pd.Series | None = None) -> pd.DataFrame:
    """Per-fold metrics of each variant: one row per (variant, repeat, fold).

    ``history`` (optional, with ``customer_id``; already without held-out customers) goes to
    every training fold minus the test fold's customers (``customers``: the ids of ``x``).
    """
    variants = VARIANTS if variants is None else variants
    x = x.reset_index(drop=True)
    labels = labels.reset_index(drop=True)
    customers = None if customers is None else customers.reset_index(drop=True)
    rows = []
    for rep in range(repeats):
        folds = StratifiedKFold(5, shuffle=True, random_state=seed + rep)
        for k, (tr, te) in enumerate(folds.split(x, labels["repeat"])):
            hist = training_history(history, customers, te)
            for name, params in variants.items():
                f = NextYearForecaster(**params).fit(
                    x.iloc[tr], labels["orders"].iloc[tr], labels["spend"].iloc[tr], hist)
                p = f.predict(x.iloc[te])
                m = forecast_metrics(labels["spend"].iloc[te], labels["orders"].iloc[te],
                                     x["basket_value"].iloc[te], p["p_repeat"],
                                     p["expected_orders"], p["expected_spend"])
                rows.append({"variant": name, "repeat": rep, "fold": k,
                             **{key: m[key] for key in KEYS}})
    return pd.DataFrame(rows)


def summarise(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean per variant (and the fold sd of the AUC), and the paired mean AUC difference to the
    first variant +- its SE."""
    g = folds.groupby("variant", sort=False)
    mean = g[list(KEYS)].mean()
    mean.insert(1, "repeat_auc_sd", g["repeat_auc"].std(ddof=1))
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
    from offline.dataset import build_customer_table, fit_history
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
    history = fit_history(table)
    folds = cross_validate(table.features[fit], table.labels[fit], repeats=args.repeats,
                           seed=args.cv_seed, history=history,
                           customers=table.ids["customer_id"][fit])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"{int(fit.sum())} fit cohort customers (+ {len(history)} history rows), "
              f"{args.repeats} x 5-fold CV")
        print(summarise(folds).round(4).T)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
