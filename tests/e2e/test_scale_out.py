"""Scale-out: two worker processes sharing 4 partitions give the same results as one.

The same slice is replayed into two isolated runs at once: run A has one worker, run B two
workers in one consumer group, each owning 2 of the 4 partitions (read from their own
assignment logs, before and after). Both runs must equal the batch scorer and pandas, and
their deduplicated outputs must be equal to each other field for field (`scored_at` aside: it
is wall-clock time).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

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
    wait_until,
    write_slice,
)

from stream.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INVOICES = int(os.environ.get("BASKETCAST_E2E_SCALE_INVOICES", "3000"))


def assigned(worker: WorkerProc, topic: str) -> set[int] | None:
    """The partitions of `topic` in the worker's last assignment table (None: none yet)."""
    found = None
    pattern = re.compile(rf"\|\s*{re.escape(topic)}\s*\|\s*\{{([^}}]*)\}}")
    for line in worker.log_text().splitlines():
        if "Setting newly assigned partitions" in line:
            found = set()
        m = pattern.search(line)
        if m and found is not None:
            for part in m.group(1).split(","):
                lo, _, hi = part.strip().partition("-")
                found |= set(range(int(lo), int(hi or lo) + 1))
    return found


def _without_wall_clock(outputs: Outputs) -> dict[str, dict]:
    out = {}
    for value in outputs.first.values():
        doc = json.loads(value)
        doc.pop("scored_at")
        out[doc["event_id"]] = doc
    return out


@pytest.mark.timeout(900)
async def test_two_workers_equal_one(kafka_bootstrap: str, redis_url: str, unique_id: str,
                                     bundle_dir: Path, shipped_log: Path, log_events: list,
                                     category_of, horizon_days: int,
                                     tmp_path: Path) -> None:
    path, events = write_slice(shipped_log, tmp_path / "slice.parquet", INVOICES, log_events)
    oracle = batch_scores(bundle_dir, path, tmp_path / "oracle.parquet")
    expected = expected_state(events, category_of, dict(oracle["invoice_id"]), horizon_days)
    one = Run(f"{unique_id}-a", kafka_bootstrap, redis_url, partitions=4)
    two = Run(f"{unique_id}-b", kafka_bootstrap, redis_url, partitions=4)
    solo = WorkerProc(one, bundle_dir, tmp_path, "solo")
    pair = [WorkerProc(two, bundle_dir, tmp_path, f"pair{i}") for i in (1, 2)]
    client = aioredis.from_url(redis_url)
    try:
        for run in (one, two):
            await ensure_topics(run.bootstrap, run.topics, run.partitions)
        async with Outputs(one) as out_one, Outputs(two) as out_two:
            for w in (solo, *pair):
                w.start()

            def split() -> bool:
                parts = [assigned(w, two.invoices) for w in pair]
                return all(parts) and parts[0] | parts[1] == {0, 1, 2, 3}

            await wait_until(split, "the pair to share the 4 partitions", 180, None, pair)
            await wait_until(lambda: assigned(solo, one.invoices) == {0, 1, 2, 3},
                             "the solo worker's assignment", 180, None, [solo])
            replay(one, path, tmp_path)
            replay(two, path, tmp_path)
            await drain(out_one, one, scores=len(oracle), timeout=600, workers=[solo])
            await drain(out_two, two, scores=len(oracle), timeout=600, workers=pair)

            split_at_end = [assigned(w, two.invoices) for w in pair]
            assert all(len(p or ()) == 2 for p in split_at_end), split_at_end
            checks = [check_scores(out, oracle) for out in (out_one, out_two)]
            for run in (one, two):
                await check_redis(client, run.run_id, expected, oracle.index)
            assert _without_wall_clock(out_one) == _without_wall_clock(out_two)
            figures = {"test": "scale-out", "invoices": len(events), "scores": len(oracle),
                       "pair_partitions": [sorted(p or ()) for p in split_at_end],
                       "duplicates": [c.duplicates for c in checks]}
            FIGURES.append(figures)
            print(figures)
    finally:
        for w in (solo, *pair):
            w.stop()
        for run in (one, two):
            await drop_prefix(client, run.run_id)
            await delete_topics(run.bootstrap, run.created_topics)
        await client.aclose()
