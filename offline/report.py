"""The HTML report: one self-contained file, figures embedded as PNG (matplotlib/seaborn).

`write_report` is called by `train`: it keeps the figures' small aggregates in
``report_data.joblib`` next to the card, so `basketcast report` can redraw the report later from
the bundle alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from offline.metrics import INTERVAL_METRICS, deciles, gini_curve, target_text

DATA_FILE = "report_data.joblib"
#: figure ids, in report order (a test checks every one is in the HTML)
FIGURES = (
    "orders_by_country", "orders_over_time", "basket_values", "cancellations",
    "category_keywords", "category_k", "segment_k", "segment_profiles", "confusion_matrix",
    "forecast_deciles", "gini_curve",
)
CREDIT = ("Data: UCI Machine Learning Repository, &ldquo;Online Retail II&rdquo; (Daqing Chen, "
          "2019), licensed CC BY 4.0 &mdash; "
          "<a href='https://archive.ics.uci.edu/dataset/502/online+retail+ii'>"
          "archive.ics.uci.edu/dataset/502</a>.")


def collect_report_data(result: Any) -> dict[str, Any]:
    """Small aggregates for every figure, from a :class:`offline.train.TrainResult`."""
    a = result.artifacts
    raw: pd.DataFrame = a["raw"]
    inv = raw.groupby("invoice_id").agg(country=("country", "first"), at=("invoiced_at", "first"))
    inv["value"] = (raw["quantity"] * raw["unit_price"]).groupby(raw["invoice_id"]).sum()
    inv["cancel"] = inv.index.str.upper().str.startswith("C")
    purchases = inv[~inv["cancel"] & (inv["value"] > 0)]
    month = purchases["at"].dt.to_period("M").astype(str)
    cmonth = inv[inv["cancel"]]["at"].dt.to_period("M").astype(str)
    cat = result.bundle.categoriser
    eval_mask = a["eval_mask"]
    labels = a["table"].labels
    spend = labels["spend"].to_numpy()[eval_mask]
    first_basket = a["table"].features["basket_value"].to_numpy()[eval_mask]
    pred = a["eval_pred"]["expected_spend"].to_numpy()
    served = result.card["classifiers"]["served"]
    return {
        "orders_by_country": purchases["country"].fillna("?").value_counts().head(15),
        "orders_per_month": month.value_counts().sort_index(),
        "cancellations_per_month": cmonth.value_counts().sort_index(),
        "basket_values": purchases["value"].clip(lower=0.01).to_numpy(),
        "category_keywords": cat.category_keywords_,
        "category_sizes": cat.category_sizes_,
        "deciles": deciles(spend, pred),
        "gini_model": gini_curve(spend, pred),
        "gini_baseline": gini_curve(spend, first_basket),
        "gini_perfect": gini_curve(spend, spend),
        "confusion": result.card["classifiers"]["models"][served]["confusion_matrix"],
    }


def _png(draw: Callable[[Any], None], size: tuple[float, float] = (7, 3.6)) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _figure(fid: str, title: str, draw: Callable[[Any], None], note: str = "",
            size: tuple[float, float] = (7, 3.6)) -> str:
    return (f"<figure id='{fid}'><img alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{_png(draw, size)}'/>"
            f"<figcaption>{html.escape(title)}{(' &mdash; ' + note) if note else ''}"
            f"</figcaption></figure>")


def _table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    return df.to_html(float_format=lambda v: floatfmt.format(v), border=0, classes="t",
                      escape=True)


def _k_curve(scores: dict, inertia: dict, chosen: int) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        ks = sorted(int(k) for k in scores)
        ax.plot(ks, [scores[str(k)] if str(k) in scores else scores[k] for k in ks], "o-",
                color="tab:blue", label="silhouette")
        ax.axvline(chosen, color="grey", ls="--", lw=1)
        ax.set_xlabel("k")
        ax.set_ylabel("silhouette", color="tab:blue")
        ax2 = ax.twinx()
        ax2.plot(ks, [inertia[str(k)] if str(k) in inertia else inertia[k] for k in ks], "s-",
                 color="tab:orange", label="inertia (elbow)")
        ax2.set_ylabel("inertia (elbow)", color="tab:orange")
    return draw


def forecast_intervals(forecast: dict[str, Any]) -> pd.DataFrame:
    """The served model's held-out figures beside their 95 % intervals and targets."""
    ci = forecast["holdout_ci95"]
    return pd.DataFrame(
        {"held out": [forecast["holdout"][m] for m in INTERVAL_METRICS],
         "95 % low": [ci[m][0] for m in INTERVAL_METRICS],
         "95 % high": [ci[m][1] for m in INTERVAL_METRICS],
         "target": [target_text(m) for m in INTERVAL_METRICS]},
        index=list(INTERVAL_METRICS))


def render_report(card: dict[str, Any], data: dict[str, Any]) -> str:
    """The report as one HTML string."""
    import seaborn as sns

    parts: list[str] = []
    add = parts.append
    add(f"<h1>basketcast model report</h1><p>model version <code>{card['model_version']}</code>"
        f", trained in {card['training_seconds']} s on {html.escape(card['data']['path'])} "
        f"({card['data']['rows']:,} rows, {card['data']['period'][0]} .. "
        f"{card['data']['period'][1]}); horizon {card['horizon_days']} days, seed "
        f"{card['seed']}.</p><p class='credit'>{CREDIT}</p>")

    add("<h2>Targets</h2>")
    add(_table(pd.DataFrame({"met": card["targets"]})))

    add("<h2>Data and cleaning</h2>")
    add(_table(pd.DataFrame({"rows": card["cleaning"]}), "{:,.0f}"))
    add(_figure("orders_by_country", "Orders by country (top 15)",
                lambda ax: data["orders_by_country"][::-1].plot.barh(ax=ax, color="tab:blue"),
                size=(7, 4.2)))
    add(_figure("orders_over_time", "Orders per month",
                lambda ax: data["orders_per_month"].plot(ax=ax, marker="o")))

    def basket(ax: Any) -> None:
        ax.hist(np.log10(data["basket_values"]), bins=60, color="tab:green")
        ax.set_xlabel("basket value, log10 GBP")
        ax.set_ylabel("orders")
    add(_figure("basket_values", "Basket values", basket))
    add(_figure("cancellations", "Cancellation invoices per month",
                lambda ax: data["cancellations_per_month"].plot.bar(ax=ax, color="tab:red")))

    add("<h2>Product categories</h2>")
    cats = card["categories"]
    kw = pd.DataFrame({"products": data["category_sizes"],
                       "keywords": [", ".join(k) for k in data["category_keywords"]]})
    add(f"<p>k = {cats['k']} chosen by best silhouette over {len(cats['silhouette'])} values "
        f"of k; {cats['keywords']} keywords (stemmed noun-like words).</p>")
    add(_table(kw))

    def catkw(ax: Any) -> None:
        ax.bar(range(len(data["category_sizes"])), data["category_sizes"], color="tab:purple")
        for i, k in enumerate(data["category_keywords"]):
            ax.text(i, 0, "\n".join(k[:4]), ha="center", va="bottom", fontsize=7, color="white")
        ax.set_xlabel("category")
        ax.set_ylabel("products")
    add(_figure("category_keywords", "Categories: size and top keywords", catkw))
    add(_figure("category_k", "Categories: silhouette and elbow over k",
                _k_curve(cats["silhouette"], cats["inertia"], cats["k"])))

    add("<h2>Customer segments</h2>")
    seg = card["segments"]
    add(f"<p>Clustered on first-year behaviour ({', '.join(seg['features'])}); k = {seg['k']} "
        f"({html.escape(seg['chosen_by'])}); bootstrap stability (mean adjusted Rand index) "
        f"{seg['stability_ari']:.3f}; elbow of the inertia curve at k = "
        f"{seg.get('elbow_k')}.</p>")
    add(_figure("segment_k", "Segments: silhouette and elbow over k",
                _k_curve(seg["silhouette"], seg["inertia"], seg["k"])))
    prof = pd.DataFrame(seg["profiles"]).set_index("segment")
    prof.insert(0, "label", seg["labels"])
    show = [c for c in ("label", "customers", "baskets", "mean_basket", "max_basket", "spend",
                        "basket_lines") if c in prof]
    add(_table(prof[show], "{:,.1f}"))

    def profile_heat(ax: Any) -> None:
        num = prof.drop(columns=["label"]).select_dtypes("number")
        num = num[[c for c in num.columns if not c.startswith("log_")]]
        z = (num - num.mean()) / num.std(ddof=0).replace(0, 1)
        sns.heatmap(z, ax=ax, cmap="vlag", center=0, annot=num.round(1), fmt="g",
                    annot_kws={"fontsize": 6}, cbar=False)
        ax.set_yticklabels(prof["label"], rotation=0, fontsize=7)
    add(_figure("segment_profiles", "Segment profiles (colour: z-score across segments)",
                profile_heat, size=(10, 3 + 0.3 * len(prof))))

    add("<h2>Segment classifiers (from the first purchase)</h2>")
    clf = card["classifiers"]
    tab = pd.DataFrame(clf["models"]).T[["accuracy", "macro_f1", "cv_macro_f1"]].astype(float)
    tab = tab.sort_values("cv_macro_f1", ascending=False)
    add(f"<p>Held-out customers; served: <b>{clf['served']}</b> (best cross-validated "
        f"macro-F1 on the fit customers).</p>")
    add(_table(tab))

    def confusion(ax: Any) -> None:
        sns.heatmap(np.array(data["confusion"]), annot=True, fmt="d", cmap="Blues", ax=ax,
                    cbar=False)
        ax.set_xlabel("predicted segment")
        ax.set_ylabel("segment")
    add(_figure("confusion_matrix", f"Confusion matrix of {clf['served']} (held out)",
                confusion, size=(4.5, 3.8)))

    add("<h2>Next-year forecast</h2>")
    fc = card["forecast"]
    add(f"<p>{html.escape(fc['model'])}. Held-out cohort customers: "
        f"{fc['holdout']['customers']}.</p>")
    var = pd.DataFrame(fc["variants_holdout"]).T[
        ["normalized_gini", "gini_lift", "decile_mape", "spearman_spend", "repeat_auc",
         "cohort_total_ratio"]].astype(float)
    add(_table(var))
    if "holdout_ci95" in fc:  # bundles trained before the intervals have none
        add("<p>The served model's held-out figures with 95 % bootstrap intervals (1,000 "
            "resamples of these customers): how far each could move with other customers of "
            "the same kind. A decile MAPE's interval leans high: the deciles of a resample are "
            "noisier than the sample's.</p>")
        add(_table(forecast_intervals(fc)))

    def dec(ax: Any) -> None:
        p, a = data["deciles"]
        idx = np.arange(1, len(p) + 1)
        ax.bar(idx - 0.2, a, 0.4, label="actual")
        ax.bar(idx + 0.2, p, 0.4, label="predicted")
        ax.set_xlabel("decile of expected_spend")
        ax.set_ylabel("mean next-year spend, GBP")
        ax.legend()
    add(_figure("forecast_deciles", "Forecast deciles: mean predicted vs actual spend", dec))

    def gini(ax: Any) -> None:
        for key, label in (("gini_perfect", "perfect"), ("gini_model", "model"),
                           ("gini_baseline", "first basket")):
            x, y = data[key]
            ax.plot(x, y, label=label)
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="random")
        ax.set_xlabel("share of customers (ranked by prediction)")
        ax.set_ylabel("share of next-year spend")
        ax.legend()
    add(_figure("gini_curve", "Gini (cumulative gain) curve", gini, size=(5.5, 4)))

    add("<h2>Seed comparison</h2>")
    seed = card.get("seed_protocol")
    if seed:
        add(f"<p>{html.escape(seed['description'])}</p>")
        add(_table(pd.DataFrame(seed["models"]).T.astype(float)))
    else:
        add("<p>Not run for this bundle: <code>basketcast train --protocol seed</code> "
            "adds it.</p>")

    add("<h2>Model card</h2><details><summary>model_card.json</summary><pre>"
        + html.escape(json.dumps(card, indent=1, default=str)) + "</pre></details>")
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table.t{border-collapse:collapse;font-size:13px}table.t td,table.t th"
             "{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
             "figure{margin:1em 0}img{max-width:100%}.credit{font-size:12px;color:#555}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>basketcast report "
            f"{card['model_version']}</title><style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>")


def write_report(result: Any, out: Path) -> Path:
    """Collect the figure data (kept in the bundle) and write the HTML report."""
    data = collect_report_data(result)
    joblib.dump(data, Path(result.artifacts["out"]) / DATA_FILE, compress=3)
    out.write_text(render_report(result.bundle.card or result.card, data), encoding="utf-8")
    return out


def report_from_bundle(model_dir: Path, out: Path) -> Path:
    """Redraw the report of an existing bundle (``basketcast report``)."""
    from offline.bundle import BundleError, load_bundle

    bundle = load_bundle(model_dir)
    path = model_dir / DATA_FILE
    if not path.exists():
        raise BundleError(f"{model_dir}: no {DATA_FILE}; retrain to get a report")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(bundle.card or {}, joblib.load(path)), encoding="utf-8")
    return out
