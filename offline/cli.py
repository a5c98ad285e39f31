"""`basketcast train | score | report`: the offline subcommands (heavy imports inside)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT,
                        stream=sys.stderr)


def _fail(msg: str) -> int:
    print(f"basketcast: error: {msg}", file=sys.stderr)
    return 2


def cmd_train(args: argparse.Namespace) -> int:
    _setup_logging()
    from offline.load import LogFormatError
    from offline.train import TrainConfig, TrainError, train

    cfg = TrainConfig(data=Path(args.data), out=Path(args.out), horizon_days=args.horizon_days,
                      seed=args.seed, protocol=args.protocol, progress=not args.no_progress)
    try:
        result = train(cfg)
    except (LogFormatError, TrainError) as exc:
        return _fail(str(exc))
    print(f"bundle written to {cfg.out}")
    print(forecast_summary(result.card["forecast"]))
    return 0


def forecast_summary(forecast: dict) -> str:
    """The forecast's held-out figures against their targets, one line each.

    >>> fc = {"holdout": {"customers": 3, "repeat_auc": 0.64},
    ...       "holdout_ci95": {"repeat_auc": [0.58, 0.70]}}
    >>> print(forecast_summary(fc))
    held-out forecast (3 cohort customers; 95 % bootstrap interval):
      repeat_auc          0.640  (0.580 .. 0.700)  target >= 0.65: missed
    """
    from offline.metrics import FORECAST_TARGETS, meets_target, target_text

    hold, ci = forecast["holdout"], forecast.get("holdout_ci95", {})
    lines = [f"held-out forecast ({hold['customers']} cohort customers; 95 % bootstrap "
             "interval):"]
    for m in FORECAST_TARGETS:
        if m not in hold:
            continue
        low, high = ci.get(m, (float("nan"), float("nan")))
        verdict = "met" if meets_target(m, hold[m]) else "missed"
        lines.append(f"  {m:18s} {hold[m]:6.3f}  ({low:.3f} .. {high:.3f})  "
                     f"target {target_text(m)}: {verdict}")
    return "\n".join(lines)


def cmd_score(args: argparse.Namespace) -> int:
    _setup_logging()
    from offline.bundle import BundleError
    from offline.load import LogFormatError
    from offline.score import score_log, write_scores

    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".csv", ".jsonl"):
        return _fail(f"--out {out}: use a .parquet, .csv or .jsonl file")
    try:
        scores = score_log(Path(args.model), Path(args.data))
    except (LogFormatError, BundleError) as exc:
        return _fail(str(exc))
    write_scores(scores, out)
    print(f"{len(scores)} customers scored -> {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    _setup_logging()
    from offline.bundle import BundleError
    from offline.report import report_from_bundle

    out = Path(args.out) if args.out else Path(args.model) / "report.html"
    try:
        report_from_bundle(Path(args.model), out)
    except BundleError as exc:
        return _fail(str(exc))
    print(f"report written to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `train`, `score` and `report` to the `basketcast` command."""
    p = sub.add_parser("train", help="train a model bundle (and its report) from a log")
    p.add_argument("--data", required=True, help="transaction log: .csv, .xlsx or .parquet")
    p.add_argument("--out", default="models/latest", help="bundle directory")
    p.add_argument("--horizon-days", type=int, default=365)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protocol", choices=["first-purchase", "seed"], default="first-purchase")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="score every first purchase in a log with a bundle")
    p.add_argument("--model", required=True, help="bundle directory")
    p.add_argument("--data", required=True, help="transaction log: .csv, .xlsx or .parquet")
    p.add_argument("--out", required=True, help="output: .parquet, .csv or .jsonl")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("report", help="(re)write a bundle's HTML report")
    p.add_argument("--model", required=True, help="bundle directory")
    p.add_argument("--out", default=None, help="HTML file (default: inside the bundle)")
    p.set_defaults(func=cmd_report)
