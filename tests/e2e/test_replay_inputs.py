"""Replay inputs: the other UCI naming, CSV and Excel files, unknown countries and stock codes,
rows out of time order in the file.

From a slice of the shipped log we make a canonical file (today's naming, time order, as
parquet) and two awkward copies of the same rows: the 2010-2011 UCI naming (`InvoiceNo`,
`UnitPrice`, `CustomerID` as a float like 17850.0, dates as "12/1/2010 8:26" in the CSV),
shuffled rows, as CSV and as Excel. Some invoices get countries and some lines stock codes the
model never saw. Each copy is replayed with `basketcast replay` into its own worker; the scores
must equal `basketcast score` on the canonical file, the Redis state pandas on it; and
`basketcast score` on each copy must equal it too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis.asyncio as aioredis
from e2e_harness import (
    FIGURES,
    Outputs,
    Run,
    WorkerProc,
    batch_scores,
    check_redis,
    check_scores,
    delete_topics,
    drain,
    drop_prefix,
    expected_state,
    replay,
    write_slice,
)

from stream.replay import load_events
from stream.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INVOICES = int(os.environ.get("BASKETCAST_E2E_INPUT_INVOICES", "600"))
SEED = int(os.environ.get("BASKETCAST_E2E_SEED", "6"))
UNKNOWN_COUNTRIES = ("Atlantis", "Narnia", "Ruritania")
OLD_NAMES = {"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"}


@pytest.fixture(scope="module")
def variants(shipped_log: Path, log_events: list,
             tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("inputs")
    path, _ = write_slice(shipped_log, d / "slice.parquet", INVOICES, log_events)
    df = pd.read_parquet(path)
    rng = np.random.default_rng(SEED)
    invoices = df["Invoice"].unique()
    odd_inv = rng.choice(invoices, size=max(10, len(invoices) // 20), replace=False)
    rows = df["Invoice"].isin(odd_inv)
    df.loc[rows, "Country"] = df.loc[rows, "Invoice"].map(
        {inv: UNKNOWN_COUNTRIES[i % 3] for i, inv in enumerate(odd_inv)})
    odd_lines = rng.choice(df.index.to_numpy(), size=max(20, len(df) // 30), replace=False)
    df.loc[odd_lines, "StockCode"] = [f"ZZ{i:05d}Q" for i in range(len(odd_lines))]
    df.loc[odd_lines, "Description"] = [f"UNSEEN GADGET {i}" for i in range(len(odd_lines))]
    canonical = d / "canonical.parquet"
    df.sort_values(["InvoiceDate", "Invoice"], kind="stable").to_parquet(canonical, index=False)

    old = df.rename(columns=OLD_NAMES)
    old["CustomerID"] = old["CustomerID"].astype("float64")  # 17850.0; NaN for guests
    old = old.sample(frac=1.0, random_state=SEED).reset_index(drop=True)  # out of time order
    assert (old["InvoiceDate"].diff().dt.total_seconds() < 0).sum() > len(old) // 4
    csv = d / "old_naming_shuffled.csv"
    as_text = old.assign(InvoiceDate=old["InvoiceDate"].map(
        lambda t: f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}"))
    as_text.to_csv(csv, index=False)
    xlsx = d / "old_naming_shuffled.xlsx"
    old.to_excel(xlsx, index=False)
    header = csv.read_text().splitlines()[0]
    assert header.startswith("InvoiceNo,StockCode") and "UnitPrice" in header
    assert ".0," in csv.read_text()[:2000]  # float customer ids, as in the old file
    return {"canonical": canonical, "csv": csv, "xlsx": xlsx, "odd_invoices": set(odd_inv),
            "odd_codes": set(df.loc[odd_lines, "StockCode"]), "rows": len(df)}


@pytest.mark.timeout(900)
async def test_replay_of_csv_and_excel_in_the_old_naming(
    kafka_bootstrap: str, redis_url: str, unique_id: str, bundle_dir: Path, category_of,
    horizon_days: int, variants: dict, tmp_path: Path,
) -> None:
    canonical = variants["canonical"]
    oracle = batch_scores(bundle_dir, canonical, tmp_path / "oracle.parquet")
    events = load_events(canonical)
    # the oddities reach the model: first purchases with unknown countries and codes
    firsts = {ev.invoice_id: ev for ev in events if ev.invoice_id in set(oracle["invoice_id"])}
    assert len(variants["odd_invoices"] & set(firsts)) >= 3
    assert sum(any(ln.stock_code in variants["odd_codes"] for ln in ev.lines)
               for ev in firsts.values()) >= 3

    # the batch path reads the copies the same way
    for kind in ("csv", "xlsx"):
        copy = batch_scores(bundle_dir, variants[kind], tmp_path / f"batch-{kind}.parquet")
        pd.testing.assert_frame_equal(copy.sort_index(), oracle.sort_index(), rtol=0,
                                      atol=1e-9, check_dtype=False)

    runs = {kind: Run(f"{unique_id}-{kind}", kafka_bootstrap, redis_url, partitions=4)
            for kind in ("csv", "xlsx")}
    workers = {kind: WorkerProc(run, bundle_dir, tmp_path, f"worker-{kind}")
               for kind, run in runs.items()}
    expected = expected_state(events, category_of, dict(oracle["invoice_id"]), horizon_days)
    client = aioredis.from_url(redis_url)
    try:
        for run in runs.values():
            await ensure_topics(run.bootstrap, run.topics, run.partitions)
        for w in workers.values():
            w.start()
        for kind, run in runs.items():
            stdout = replay(run, variants[kind], tmp_path)
            assert f"replayed {len(events)} invoices" in stdout, stdout
        for kind, run in runs.items():
            async with Outputs(run) as out:
                await drain(out, run, scores=len(oracle), timeout=600, workers=[workers[kind]])
                check = check_scores(out, oracle)
                assert not out.dead, [r.value[:200] for r in out.dead[:3]]
            await check_redis(client, run.run_id, expected, oracle.index)
            FIGURES.append({"test": f"replay input {kind}", "rows": variants["rows"],
                            "invoices": len(events), "scores": check.distinct,
                            "duplicates": check.duplicates})
    finally:
        for w in workers.values():
            w.stop()
        for run in runs.values():
            await drop_prefix(client, run.run_id)
            await delete_topics(run.bootstrap, run.created_topics)
        await client.aclose()
