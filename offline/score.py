"""Batch scoring: read_log -> invoices_from_lines -> first purchase per customer -> score."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from offline.bundle import SCORE_COLUMNS, load_bundle
from offline.events import first_purchases, invoices_from_lines
from offline.load import read_log

log = logging.getLogger(__name__)


def score_log(model_dir: Path, data: Path) -> pd.DataFrame:
    """One row per customer whose first purchase is in the log (columns: SCORE_COLUMNS)."""
    bundle = load_bundle(model_dir)
    df = read_log(data)
    events = invoices_from_lines(df[df["customer_id"].notna()])
    firsts = list(first_purchases(events).values())
    rows = bundle.score_invoices(firsts)
    out = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    out["customer_id"] = out["customer_id"].astype("string")
    log.info("event=scored customers=%d model_version=%s", len(out), bundle.model_version)
    return out


def write_scores(scores: pd.DataFrame, out: Path) -> None:
    """Write by suffix: .parquet, .csv or .jsonl."""
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        scores.to_parquet(out, index=False)
    elif suffix == ".csv":
        scores.to_csv(out, index=False)
    else:
        scores.to_json(out, orient="records", lines=True)
