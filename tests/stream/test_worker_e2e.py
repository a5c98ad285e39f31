"""End to end on the real services: replay a slice of the shipped log through Kafka into a
`python -m stream worker` process; its `customer-scores` must equal the batch scorer on the same
slice with the same bundle, and its Redis state a pandas computation from the same slice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from offline.score import score_log
from schemas.dead_letter import DeadLetter
from schemas.scored import CustomerScored, score_event_id
from stream.replay import load_events
from stream.services import free_port
from stream.store import CustomerStore
from stream.topics import delete_topics
from tests.e2e.e2e_harness import expected_state

pytestmark = pytest.mark.integration

SLICE = int(os.environ.get("BASKETCAST_E2E_INVOICES", "3000"))


@pytest.fixture(scope="module")
def slice_log(shipped_log: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """The first SLICE invoices of the log, as a line-level parquet file and as events."""
    events = load_events(shipped_log, limit=SLICE)
    ids = {ev.invoice_id for ev in events}
    raw = pd.read_parquet(shipped_log)
    path = tmp_path_factory.mktemp("slice") / "slice.parquet"
    raw[raw["Invoice"].astype(str).isin(ids)].to_parquet(path, index=False)
    return path, events


async def _read(consumer: AIOKafkaConsumer, want: int, timeout: float, proc: subprocess.Popen,
                log: Path) -> list:
    """Records until `want` arrived (then 1 s more, to catch extras), or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline, got, settle = loop.time() + timeout, [], None
    while settle is None or loop.time() < settle:
        if proc.poll() is not None:
            pytest.fail(f"worker exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        if loop.time() > deadline:
            pytest.fail(f"{len(got)}/{want} records in {timeout}s:\n{log.read_text()[-4000:]}")
        batch = await consumer.getmany(timeout_ms=200)
        got.extend(r for recs in batch.values() for r in recs)
        if settle is None and len(got) >= want:
            settle = loop.time() + 1.0
    return got


def _env(kafka_bootstrap: str, redis_url: str, unique_id: str) -> dict[str, str]:
    return {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url,
        "BASKETCAST_APP_ID": unique_id, "BASKETCAST_REDIS_PREFIX": unique_id,
        "BASKETCAST_TOPIC_INVOICES": f"{unique_id}-invoices",
        "BASKETCAST_TOPIC_SCORES": f"{unique_id}-scores",
        "BASKETCAST_TOPIC_DLQ": f"{unique_id}-dlq", "BASKETCAST_TOPIC_DRIFT": f"{unique_id}-drift",
        "BASKETCAST_PARTITIONS": "3", "BASKETCAST_WEB_PORT": str(free_port()),
    }


def _replay(env: dict[str, str], path: Path, cwd: Path, n: int, *window: str) -> None:
    cmd = [sys.executable, "-m", "stream", "replay", "--data", str(path), "--no-progress",
           *window]
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"replayed {n} invoices" in done.stdout


def _start_worker(env: dict[str, str], bundle_dir: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "stream", "worker", "--model", str(bundle_dir)],
            env=env, cwd=log.parent, stdout=f, stderr=subprocess.STDOUT,
        )


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _check_scores(scores: list[CustomerScored], oracle: pd.DataFrame) -> None:
    """Exactly the batch scorer's customers, invoices and numbers (1e-9)."""
    by_customer = {s.customer_id: s for s in scores}
    assert len(by_customer) == len(scores), "a customer was scored twice"
    assert set(by_customer) == set(oracle.index)
    for cid, s in by_customer.items():
        o = oracle.loc[cid]
        assert s.invoice_id == o["invoice_id"]
        assert s.first_purchase_at == pd.Timestamp(o["first_purchase_at"]).to_pydatetime()
        assert (s.segment, s.segment_label) == (int(o["segment"]), o["segment_label"])
        for col in ("p_repeat", "expected_orders", "expected_spend"):
            assert abs(getattr(s, col) - float(o[col])) <= 1e-9, (cid, col)
        assert s.model_version == o["model_version"]
        assert s.event_id == score_event_id(s.model_version, cid, s.invoice_id)


async def _check_state(store: CustomerStore, events: list, bundle_dir: Path,
                       scored: set[str]) -> None:
    """Redis aggregates equal a pandas computation from the same invoices."""
    from offline.bundle import load_bundle

    expected = expected_state(events, load_bundle(bundle_dir).category_of)
    for cid, row in expected.iterrows():
        state = await store.customer(str(cid))
        assert state is not None, cid
        assert float(state["spend"]) == pytest.approx(row["spend"], abs=1e-6), cid
        assert int(state["items"]) == row["items"]
        for kind, field in (("P", "orders"), ("C", "cancellations"),
                            ("A", "adjustments"), ("O", "others")):
            assert int(state.get(field, 0)) == row.get(kind, 0), (cid, field)
        assert float(state["first_seen"]) == row["first_seen"]
        assert float(state["last_seen"]) == row["last_seen"]
        assert len(state["invoices"]) == row["n_invoices"]
        for cat, amount in state["category_spend"].items():
            assert amount == pytest.approx(row[f"cat_{cat}"], abs=1e-6)
        assert ("fp_invoice" in state) == (str(cid) in scored)
    assert await store.redis.zcard(store.maturation_key) == len(scored)


async def _cleanup(client: aioredis.Redis, prefix: str, bootstrap: str | None = None) -> None:
    """Remove the test's Redis keys and (given the broker) its topics."""
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=10_000)]
    for i in range(0, len(keys), 500):
        await client.delete(*keys[i:i + 500])
    await client.aclose()
    if bootstrap:
        await delete_topics(bootstrap, prefix)


def _consumer(env: dict[str, str], kafka_bootstrap: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        env["BASKETCAST_TOPIC_SCORES"], env["BASKETCAST_TOPIC_DLQ"],
        bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
        group_id=group, fetch_max_wait_ms=50,
    )


async def test_replay_through_worker_equals_batch_scores(
    kafka_bootstrap: str, redis_url: str, unique_id: str, bundle_dir: Path,
    slice_log: tuple[Path, list], tmp_path: Path,
) -> None:
    path, events = slice_log
    env = _env(kafka_bootstrap, redis_url, unique_id)
    _replay(env, path, tmp_path, len(events))
    oracle = score_log(bundle_dir, path).set_index("customer_id")
    assert len(oracle) > 100

    log = tmp_path / "worker.log"
    worker = _start_worker(env, bundle_dir, log)
    consumer = _consumer(env, kafka_bootstrap, f"{unique_id}-reader")
    client = aioredis.from_url(redis_url)
    store = CustomerStore(client, unique_id)
    try:
        await consumer.start()
        got = await _read(consumer, len(oracle), 240, worker, log)
        score_records = [r for r in got if r.topic == env["BASKETCAST_TOPIC_SCORES"]]
        scores = [CustomerScored.model_validate_json(r.value) for r in score_records]
        assert all(r.key.decode() == s.customer_id
                   for r, s in zip(score_records, scores, strict=True))
        _check_scores(scores, oracle)
        await _check_state(store, events, bundle_dir, {s.customer_id for s in scores})

        # re-delivery of the whole slice: same scores (same event ids), nothing counted twice
        before = {cid: await store.customer(cid) for cid in list(oracle.index)[:200]}
        _replay(env, path, tmp_path, len(events))
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        await producer.send_and_wait(env["BASKETCAST_TOPIC_INVOICES"], b"\xffnot json",
                                     key=b"42", partition=1)
        await producer.stop()
        again = await _read(consumer, len(scores) + 1, 240, worker, log)
        dead = [DeadLetter.model_validate_json(r.value) for r in again
                if r.topic == env["BASKETCAST_TOPIC_DLQ"]]
        rescored = [r.value for r in again if r.topic == env["BASKETCAST_TOPIC_SCORES"]]
        assert Counter(rescored) == Counter(r.value for r in score_records)
        assert [(d.reason, d.source_partition, d.raw_value()) for d in dead] == [
            ("not_utf8", 1, b"\xffnot json")]
        for cid, state in before.items():
            assert await store.customer(cid) == state
    finally:
        await consumer.stop()
        _stop(worker)
        await _cleanup(client, unique_id, kafka_bootstrap)


# SIGKILL mid-stream is proven on the whole log, with kill points chosen by committed
# offsets (so never too late), in tests/e2e/test_full_replay.py.


class PrivateRedis:
    """A redis-server of this test's own, with an append-only file, that can be stopped."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port),
                                                                        0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()),
                    reason="needs the redis-server binary")
async def test_redis_outage_waits_logs_and_loses_nothing(
    kafka_bootstrap: str, unique_id: str, bundle_dir: Path, slice_log: tuple[Path, list],
    tmp_path: Path,
) -> None:
    """Redis dies part-way: the worker logs, retries, commits nothing; once Redis is back
    every customer is scored and every invoice counted once."""
    path, events = slice_log
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    server = PrivateRedis(redis_dir)
    server.start()
    env = _env(kafka_bootstrap, server.url, unique_id)
    # The later half is produced only once Redis is down, so the worker must meet the outage.
    cut = events[len(events) // 2].invoiced_at.isoformat()
    n_early = sum(ev.invoiced_at.isoformat() < cut for ev in events)
    _replay(env, path, tmp_path, n_early, "--until", cut)
    oracle = score_log(bundle_dir, path).set_index("customer_id")
    log = tmp_path / "worker.log"
    consumer = _consumer(env, kafka_bootstrap, f"{unique_id}-reader")
    worker = _start_worker(env, bundle_dir, log)
    client = None
    try:
        await consumer.start()
        first = await _read(consumer, 1, 240, worker, log)
        server.stop()
        _replay(env, path, tmp_path, len(events) - n_early, "--since", cut)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while "event=redis_unavailable" not in log.read_text(errors="replace"):
            assert loop.time() < deadline, f"no outage logged:\n{log.read_text()[-3000:]}"
            assert worker.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # an outage of a few seconds, the worker retrying meanwhile
        server.start()
        seen: dict[str, bytes] = {}
        records = list(first)
        deadline = loop.time() + 300
        while True:
            for r in records:
                s = CustomerScored.model_validate_json(r.value)
                assert seen.setdefault(s.event_id, r.value) == r.value
            if len(seen) >= len(oracle):
                break
            assert loop.time() < deadline, f"{len(seen)}/{len(oracle)}:\n{log.read_text()[-3000:]}"
            assert worker.poll() is None, log.read_text()[-3000:]
            batch = await consumer.getmany(timeout_ms=200)
            records = [r for recs in batch.values() for r in recs]
        assert "event=redis_recovered" in log.read_text(errors="replace")
        _check_scores([CustomerScored.model_validate_json(v) for v in seen.values()], oracle)
        client = aioredis.from_url(server.url)
        await _check_state(CustomerStore(client, unique_id), events, bundle_dir,
                           set(oracle.index))
    finally:
        await consumer.stop()
        _stop(worker)
        if client is not None:
            await client.aclose()
        server.stop()
        await delete_topics(kafka_bootstrap, unique_id)
