"""The worker's web views over HTTP, on a running `python -m stream worker` (real services).

One worker run serves /health, /customers/{id} and /metrics while it scores and learns a
slice of the log; a second worker on the same Redis resumes from the stored online model; a
worker whose Redis is down answers /health with 503.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from test_worker_e2e import _cleanup, _env, _start_worker, _stop

from schemas.invoice import InvoiceEvent
from stream.learner import OnlineStore
from stream.replay import produce
from stream.services import free_port
from stream.settings import Settings
from stream.topics import ensure_worker_topics

pytestmark = pytest.mark.integration

#: Learn from the first labels on (no warm-up), in quick ticks.
LEARNER_ENV = {"BASKETCAST_LEARNER_INTERVAL_S": "0.2", "BASKETCAST_ONLINE_RELOAD_S": "0.2",
               "BASKETCAST_LEARNER_WARMUP_DAYS": "0"}


def get(port: int, path: str) -> tuple[int, bytes, str]:
    """(status, body, content type) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


async def poll(port: int, path: str, ok, timeout: float, worker, log: Path) -> tuple:
    """GET `path` until `ok(status, doc)`; returns (status, doc)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert worker.poll() is None, log.read_text()[-4000:]
        try:
            status, body, _ = await asyncio.to_thread(get, port, path)
            last = (status, json.loads(body))
            if ok(*last):
                return last
        except (OSError, ValueError):
            pass
        await asyncio.sleep(0.3)
    pytest.fail(f"{path}: no satisfying answer in {timeout}s, last {last}:\n"
                f"{log.read_text()[-3000:]}")


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


@pytest.mark.timeout(900)
async def test_health_customers_metrics_and_resume_after_restart(
    kafka_bootstrap: str, redis_url: str, unique_id: str, bundle90: Path,
    log_events: list[InvoiceEvent], tmp_path: Path,
) -> None:
    env = {**_env(kafka_bootstrap, redis_url, unique_id), **LEARNER_ENV}
    port = int(env["BASKETCAST_WEB_PORT"])
    settings = Settings.from_env(env)
    await ensure_worker_topics(settings)  # the worker's own topic definitions
    topics = settings.worker_topics
    part_a, part_b = log_events[:9000], log_events[9000:10000]  # Dec 2009 - mid 2010
    await produce(part_a, kafka_bootstrap, topics[0], progress=False)
    log = tmp_path / "worker.log"
    client = aioredis.from_url(redis_url)
    online = OnlineStore(client, unique_id)
    worker = _start_worker(env, bundle90, log)
    try:
        status, health = await poll(
            port, "/health",
            lambda s, d: s == 200 and d["consumer_lag"]["total"] == 0
            and (d["online"].get("stored_version") or 0) > 0, 300, worker, log)
        assert health["checks"] == {"kafka": True, "redis": True, "bundle": True}
        card = json.loads((bundle90 / "model_card.json").read_text())
        assert health["bundle"] == {"model_version": card["model_version"], "horizon_days": 90}
        assert health["online"]["enabled"] and health["online"]["learned"] > 0
        drift = health["drift"]  # without a warm-up, old customers may well look like drift
        assert drift["monitor"]["detector"].startswith("ADWIN")
        assert drift["last"] is None if drift["detections"] == 0 else drift["last"]["action"]
        assert health["leader"] is True

        cid = next(ev.customer_id for ev in part_a if ev.customer_id is not None)
        status, body, _ = get(port, f"/customers/{cid}")
        doc = json.loads(body)
        assert status == 200 and doc["customer_id"] == cid
        assert doc["features"] and doc["score"]["customer_id"] == cid
        assert doc["model_versions"]["batch"] == card["model_version"]
        assert doc["learned_label"] is None or doc["learned_label"]["orders"] >= 0
        assert get(port, "/customers/no-such-customer")[0] == 404

        status, body, ctype = get(port, "/metrics")
        text = body.decode()
        assert status == 200 and ctype.startswith("text/plain")
        assert metric(text, "basketcast_events_total") == len(part_a)
        assert metric(text, "basketcast_first_purchases_total") > 100
        assert metric(text, "basketcast_guests_total") > 0
        assert metric(text, "basketcast_online_updates_total") == health["online"]["learned"]
        assert metric(text, "basketcast_drift_detections_total") == drift["detections"]
        assert metric(text, "basketcast_event_to_score_seconds_count") >= len(part_a) - 1
        assert "basketcast_duplicates_total" in text and "basketcast_dead_letters" in text
        # 9,000 invoices were validated and scored: that took time, and so did waiting
        assert metric(text, 'basketcast_loop_seconds_total{phase="prepare"}') > 0
        assert metric(text, 'basketcast_loop_seconds_total{phase="fetch"}') > 0
        assert 'basketcast_loop_seconds_total{phase="store_wait"}' in text
        summary = await online.summary()
    finally:
        _stop(worker)

    # a restart: the new worker serves the stored online model and learns on from it
    await produce(part_b, kafka_bootstrap, topics[0], progress=False)
    worker = _start_worker(env, bundle90, log)
    try:
        status, health = await poll(
            port, "/health",
            lambda s, d: s == 200 and d["consumer_lag"]["total"] == 0
            and (d["online"]["served_version"] or 0) >= summary["version"], 300, worker, log)
        assert health["online"]["learned"] >= summary["learned"]
        new_customers = {ev.customer_id for ev in part_b} - {ev.customer_id for ev in part_a}
        scored = None
        for cid in sorted(c for c in new_customers if c):
            status, body, _ = get(port, f"/customers/{cid}")
            if status == 200 and json.loads(body)["score"]:
                scored = json.loads(body)
                break
        assert scored is not None
        assert scored["score"]["online"]["model_version"] >= summary["version"]
        assert scored["score"]["models"][0] == f"batch:{scored['score']['model_version']}"
    finally:
        _stop(worker)
        await _cleanup(client, unique_id)


@pytest.mark.timeout(300)
async def test_health_is_503_when_redis_is_unreachable(
    kafka_bootstrap: str, redis_url: str, unique_id: str, bundle90: Path, tmp_path: Path,
) -> None:
    env = {**_env(kafka_bootstrap, f"redis://127.0.0.1:{free_port()}/0", unique_id),
           **LEARNER_ENV}
    port = int(env["BASKETCAST_WEB_PORT"])
    log = tmp_path / "worker.log"
    worker = _start_worker(env, bundle90, log)
    try:
        status, health = await poll(port, "/health", lambda s, d: s in (200, 503), 120,
                                    worker, log)
        assert status == 503 and health["status"] == "unavailable"
        assert health["checks"] == {"kafka": True, "redis": False, "bundle": True}
    finally:
        _stop(worker)
