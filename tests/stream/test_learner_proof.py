"""The proof of online learning (issue 5), on the real services and the whole shipped log.

A bundle with a 90-day horizon (trained once per session, or $BASKETCAST_TEST_BUNDLE_90) serves
a `python -m stream worker` with the learner on. The log is replayed twice, a year in ~30 s
(`REPLAY_SPEED`), into a running worker, as live traffic would come: the learner steps every
0.2 s and follows the replay. At full speed the worker now scores the whole log (~2.5 s)
before the first labels after the shift have matured, so no score could use them.

- shifted: from SHIFT on, every invoice that is not a customer's first purchase has its
  quantities x3 (repeat customers buy three times as much). `ModelDrift` must be raised, only
  with event times after SHIFT, and on the customers first seen from SHIFT on (whose labels
  are known), the emitted online forecasts' spend MAE must be lower than the batch model's.
- unshifted: no `ModelDrift` at all.

Both runs also check label maturation: every label the learner learned equals
`offline.labels.outcomes` on the same invoices.

    BASKETCAST_TEST_BUNDLE_90=/tmp/b90 .venv/bin/pytest -s tests/stream/test_learner_proof.py
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from test_web import poll
from test_worker_e2e import _cleanup, _env, _start_worker, _stop

from offline.events import first_purchases
from offline.labels import invoice_table, outcomes
from schemas.drift import ModelDrift
from schemas.invoice import InvoiceEvent
from schemas.scored import CustomerScored
from stream.aggregates import event_time
from stream.learner import OnlineStore
from stream.replay import produce
from stream.settings import Settings
from stream.store import CustomerStore
from stream.topics import ensure_worker_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HORIZON = 90
SHIFT = datetime(2010, 9, 1)
FACTOR = 3
#: The learner's settings in this test: quick ticks, so the online model follows the replay.
LEARNER_ENV = {"BASKETCAST_LEARNER_INTERVAL_S": "0.2", "BASKETCAST_ONLINE_RELOAD_S": "0.2"}
#: x real time: the shipped log's two years in ~60 s
REPLAY_SPEED = 365 * 86_400 / 30


def shifted(events: list[InvoiceEvent], since: datetime, factor: int) -> list[InvoiceEvent]:
    """Quantities x factor on every invoice from `since` on that is no first purchase."""
    fp_ids = {ev.invoice_id for ev in first_purchases(events).values()}
    out = []
    for ev in events:
        if ev.customer_id is None or ev.invoice_id in fp_ids or ev.invoiced_at < since:
            out.append(ev)
            continue
        lines = tuple(ln.model_copy(update={"quantity": ln.quantity * factor})
                      for ln in ev.lines)
        out.append(ev.model_copy(update={"lines": lines}))
    return out


def labels(events: list[InvoiceEvent]) -> pd.DataFrame:
    """Per first-time customer: first purchase time and the horizon label (offline rule)."""
    firsts = list(first_purchases(events).values())
    first = pd.DataFrame({"customer_id": [ev.customer_id for ev in firsts],
                          "invoice_id": [ev.invoice_id for ev in firsts],
                          "invoiced_at": [ev.invoiced_at for ev in firsts]})
    lab = outcomes(invoice_table(events), first, HORIZON)
    return first.set_index("customer_id").join(lab)


async def _run(events: list[InvoiceEvent], bundle: Path, env: dict[str, str], tmp: Path,
               kafka_bootstrap: str, redis_url: str) -> tuple[list[CustomerScored],
                                                              list[ModelDrift], dict, float]:
    """Replay, run the worker until every label has matured and been learned; return the
    scores, the drift events, the learned labels and the wall time."""
    prefix = env["BASKETCAST_REDIS_PREFIX"]
    settings = Settings.from_env(env)
    await ensure_worker_topics(settings)  # the worker's own topic definitions
    topics = settings.worker_topics
    t0 = time.perf_counter()
    log = tmp / "worker.log"
    worker = _start_worker(env, bundle, log)
    await poll(int(env["BASKETCAST_WEB_PORT"]), "/health",
               lambda status, doc: status == 200 and doc["consumer_lag"]["partitions"],
               300, worker, log)
    producing = asyncio.create_task(
        produce(events, kafka_bootstrap, topics[0], speed=REPLAY_SPEED, progress=False))
    client = aioredis.from_url(redis_url)
    store, online = CustomerStore(client, prefix), OnlineStore(client, prefix)
    n_first = len(first_purchases(events))
    end = max(event_time(ev.invoiced_at) for ev in events if ev.customer_id is not None)
    lateness = float(env.get("BASKETCAST_LEARNER_LATENESS_S", "86400"))
    consumer = AIOKafkaConsumer(topics[1], topics[3], bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    scores: dict[str, CustomerScored] = {}
    drifts: list[ModelDrift] = []
    try:
        await consumer.start()
        deadline = time.monotonic() + 900
        while True:
            assert worker.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            if producing.done():
                producing.result()  # a failed replay fails the test here
            batch = await consumer.getmany(timeout_ms=500)
            for r in (r for recs in batch.values() for r in recs):
                if r.topic == topics[1]:
                    s = CustomerScored.model_validate_json(r.value)
                    scores[s.customer_id] = s
                else:
                    drifts.append(ModelDrift.model_validate_json(r.value))
            summary = await online.summary()
            cursor = summary.get("cursor")
            marks = dict(await client.zrange(store.watermark_key, 0, -1, withscores=True))
            done = marks.get(b"event_time") == end  # every invoice applied
            least = min((s for m, s in marks.items() if m.startswith(b"partition:")),
                        default=end)
            if (producing.done() and done and len(scores) >= n_first and cursor is not None
                    and cursor >= least - lateness - 1e-6):
                break
        await asyncio.sleep(1.0)  # a drift event sent with the last step
        batch = await consumer.getmany(timeout_ms=1000)
        drifts += [ModelDrift.model_validate_json(r.value)
                   for recs in batch.values() for r in recs if r.topic == topics[3]]
        raw = await client.hgetall(online.labels_key)
        learned = {k.decode(): v.decode().split() for k, v in raw.items()}
        assert await store.redis.zscore(store.watermark_key, "event_time") == end
        return list(scores.values()), drifts, learned, time.perf_counter() - t0
    finally:
        if not producing.done():
            producing.cancel()
        await asyncio.gather(producing, return_exceptions=True)
        await consumer.stop()
        _stop(worker)
        await _cleanup(client, prefix)


def _evaluate(scores: list[CustomerScored], truth: pd.DataFrame, since: datetime,
              log_end: datetime) -> dict[str, float]:
    """Spend MAE of the batch and the online forecasts on customers first seen from `since`
    whose horizon ended within the log."""
    df = pd.DataFrame([{
        "customer_id": s.customer_id, "batch": s.expected_spend,
        "online": s.online.expected_spend if s.online else s.expected_spend,
        "online_mean": s.online.expected_spend_mean if s.online else s.expected_spend,
        "corrected": bool(s.online and s.online.corrected),
    } for s in scores]).set_index("customer_id").join(truth, how="inner")
    due = df["invoiced_at"] + pd.Timedelta(days=HORIZON)
    ev = df[(df["invoiced_at"] >= pd.Timestamp(since)) & (due <= pd.Timestamp(log_end))]
    return {
        "n": len(ev),
        "mae_batch": float((ev["spend"] - ev["batch"]).abs().mean()),
        "mae_online": float((ev["spend"] - ev["online"]).abs().mean()),
        "share_corrected": float(ev["corrected"].mean()),
        "mean_spend": float(ev["spend"].mean()),
        "mean_batch": float(ev["batch"].mean()),
        "mean_online": float(ev["online"].mean()),
        "mean_online_mean": float(ev["online_mean"].mean()),
        "mae_online_mean": float((ev["spend"] - ev["online_mean"]).abs().mean()),
    }


def _check_learned(learned: dict, truth: pd.DataFrame) -> None:
    """Every learned label equals the offline label of the same customer."""
    assert learned, "the learner learned nothing"
    bad = [(cid, v, truth.loc[cid, ["orders", "spend"]].tolist()) for cid, v in learned.items()
           if int(v[0]) != truth.loc[cid, "orders"]
           or abs(float(v[1]) - truth.loc[cid, "spend"]) > 1e-6]
    assert not bad, f"{len(bad)} of {len(learned)} labels differ, e.g. {bad[:5]}"


Runner = Callable[..., object]


@pytest.mark.timeout(1800)
async def test_shifted_log_raises_drift_after_the_shift_and_online_beats_batch(
    kafka_bootstrap: str, redis_url: str, unique_id: str, bundle90: Path,
    log_events: list[InvoiceEvent], tmp_path: Path,
) -> None:
    events = shifted(log_events, SHIFT, FACTOR)
    env = {**_env(kafka_bootstrap, redis_url, unique_id), **LEARNER_ENV}
    scores, drifts, learned, seconds = await _run(events, bundle90, env, tmp_path,
                                                  kafka_bootstrap, redis_url)
    truth = labels(events)
    _check_learned(learned, truth)
    end = max(ev.invoiced_at for ev in events)
    fig = _evaluate(scores, truth, SHIFT, end)
    times = [d.event_time.isoformat() for d in drifts]
    print(f"\nshifted x{FACTOR} from {SHIFT:%Y-%m-%d}: drift at {times}; on {fig['n']} customers "
          f"first seen since: spend MAE batch {fig['mae_batch']:.1f}, online "
          f"{fig['mae_online']:.1f} (corrected {fig['share_corrected']:.0%}); mean spend actual "
          f"{fig['mean_spend']:.1f}, batch {fig['mean_batch']:.1f}, online "
          f"{fig['mean_online']:.1f}, online mean-calibrated {fig['mean_online_mean']:.1f} "
          f"(its MAE {fig['mae_online_mean']:.1f}); labels learned {len(learned)}; "
          f"{seconds:.0f} s")
    assert drifts, "no ModelDrift on the shifted log"
    assert all(d.event_time.replace(tzinfo=None) >= SHIFT for d in drifts), times
    assert fig["mae_online"] < fig["mae_batch"], fig


@pytest.mark.timeout(1800)
async def test_unshifted_log_raises_no_drift(
    kafka_bootstrap: str, redis_url: str, unique_id: str, bundle90: Path,
    log_events: list[InvoiceEvent], tmp_path: Path,
) -> None:
    env = {**_env(kafka_bootstrap, redis_url, unique_id), **LEARNER_ENV}
    scores, drifts, learned, seconds = await _run(log_events, bundle90, env, tmp_path,
                                                  kafka_bootstrap, redis_url)
    truth = labels(log_events)
    _check_learned(learned, truth)
    fig = _evaluate(scores, truth, SHIFT, max(ev.invoiced_at for ev in log_events))
    print(f"\nunshifted: drift events {len(drifts)}; on {fig['n']} customers first seen since "
          f"{SHIFT:%Y-%m-%d}: spend MAE batch {fig['mae_batch']:.1f}, online "
          f"{fig['mae_online']:.1f} (corrected {fig['share_corrected']:.0%}); mean spend actual "
          f"{fig['mean_spend']:.1f}, batch {fig['mean_batch']:.1f}, online "
          f"{fig['mean_online']:.1f}, online mean-calibrated {fig['mean_online_mean']:.1f} "
          f"(its MAE {fig['mae_online_mean']:.1f}); labels learned {len(learned)}; "
          f"{seconds:.0f} s")
    assert not drifts, [d.model_dump() for d in drifts]
