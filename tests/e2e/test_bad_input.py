"""Bad input soak: 5 % malformed events (generated with hypothesis) mixed into a replay.

Every malformed event must reach the dead-letter topic byte for byte with the reason the
contract gives it, every valid one must be scored exactly as the batch scorer scores it (and
counted in Redis exactly as pandas counts it), and the worker must never restart: one process,
the same pid from start to end, no traceback and no crashed service in its log.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from e2e_harness import (
    FIGURES,
    Outputs,
    Run,
    WorkerProc,
    batch_scores,
    check_redis,
    check_scores,
    dead_letters,
    delete_topics,
    drain,
    drop_prefix,
    expected_state,
    write_slice,
)
from hypothesis import HealthCheck, Phase, given, seed, settings
from malformed import malformed

from stream.replay import encode
from stream.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALID = int(os.environ.get("BASKETCAST_E2E_SOAK_INVOICES", "2500"))
BAD_SHARE = 0.05
SEED = int(os.environ.get("BASKETCAST_E2E_SEED", "6"))


def generate_malformed(base: list[bytes], n: int) -> list[tuple[bytes, str, str]]:
    """`n` malformed events drawn by hypothesis (seeded: the same ones every run)."""
    drawn: list[tuple[bytes, str, str]] = []

    @seed(SEED)
    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(malformed(base))
    def collect(example: tuple[bytes, str, str]) -> None:
        drawn.append(example)

    collect()
    assert len(drawn) >= n // 2, f"hypothesis drew only {len(drawn)} examples"
    return [drawn[i % len(drawn)] for i in range(n)]


@pytest.mark.timeout(900)
async def test_bad_input_soak(kafka_bootstrap: str, redis_url: str, unique_id: str,
                              bundle_dir: Path, shipped_log: Path, log_events: list,
                              category_of, horizon_days: int, tmp_path: Path) -> None:
    path, events = write_slice(shipped_log, tmp_path / "slice.parquet", VALID, log_events)
    oracle = batch_scores(bundle_dir, path, tmp_path / "oracle.parquet")
    valid = [encode(ev) for ev in events]
    n_bad = round(len(valid) * BAD_SHARE / (1 - BAD_SHARE))
    bad = generate_malformed([v for _, v in valid], n_bad)
    # mixed in at seeded random places, keyed like a random real invoice (guests: no key)
    rng = random.Random(SEED)
    stream: list[tuple[bytes | None, bytes]] = list(valid)
    for value, _kind, _reason in bad:
        stream.insert(rng.randrange(len(stream) + 1), (rng.choice(valid)[0], value))
    assert n_bad / len(stream) == pytest.approx(BAD_SHARE, abs=0.001)

    run = Run(unique_id, kafka_bootstrap, redis_url, partitions=4)
    worker = WorkerProc(run, bundle_dir, tmp_path)
    client = aioredis.from_url(redis_url)
    try:
        await ensure_topics(run.bootstrap, run.topics, run.partitions)
        async with Outputs(run) as out:
            pid = worker.start()
            producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap, acks="all",
                                        linger_ms=5)
            await producer.start()
            try:
                for key, value in stream:
                    await producer.send(run.invoices, value, key=key)
                await producer.flush()
            finally:
                await producer.stop()
            await drain(out, run, scores=len(oracle), dead=n_bad, timeout=600,
                        workers=[worker])

            # every malformed event in the dead-letter topic, byte for byte, with its reason
            dead = dead_letters(out)
            assert all(d.source_topic == run.invoices for d in dead)
            assert Counter((d.raw_value(), d.reason) for d in dead) == Counter(
                (value, reason) for value, _, reason in bad)
            # every valid one scored as the batch scorer does, and counted in Redis
            check = check_scores(out, oracle)
            expected = expected_state(events, category_of, dict(oracle["invoice_id"]),
                                      horizon_days)
            await check_redis(client, run.run_id, expected, oracle.index)
            # the worker never restarted
            assert worker.alive() and worker.pid == pid and worker.starts == 1
            assert worker.crash_lines() == []
            reasons = Counter(d.reason for d in dead)
            kinds = Counter(kind.split(":")[0] for _, kind, _ in bad)
            figures = {"test": "bad input soak", "valid": len(valid), "malformed": n_bad,
                       "kinds": dict(kinds), "reasons": dict(reasons),
                       "scores": check.distinct, "duplicates": check.duplicates}
            FIGURES.append(figures)
            print(figures)
    finally:
        worker.stop()
        await drop_prefix(client, run.run_id)
        await client.aclose()
        await delete_topics(run.bootstrap, run.created_topics)
