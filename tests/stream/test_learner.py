"""The learner, the online model, the drift monitor and their persistence: no services."""

from __future__ import annotations

import asyncio
import json
import random
from itertools import pairwise

import pytest
from fake_redis import FakeRedis
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.drift import ModelDrift
from stream.learner import DAY, Learner, LearnerConfig, OnlineStore
from stream.online_model import BatchForecast, OnlineModel
from stream.online_serving import ServedModel
from stream.store import MICROS, CustomerStore

T0 = 1_262_304_000.0  # 2010-01-01
H = 90 * DAY


async def seed(redis: FakeRedis, n: int, spend_of=lambda i: 100.0, prefix: str = "p") -> None:
    """n customers, one first purchase a day from T0, batch forecast 100 GBP."""
    store = CustomerStore(redis, prefix)
    for i in range(n):
        cid, fp = f"c{i:04d}", T0 + i * DAY
        score = {"segment": i % 3, "p_repeat": 0.5, "expected_orders": 1.0,
                 "expected_spend": 100.0}
        await redis.hset(store.keys(cid)[0], mapping={
            "score": json.dumps(score), "features": json.dumps({"n_lines": i % 7}),
            "h_orders": 1 if spend_of(i) > 0 else 0,
            "h_spend_micros": round(spend_of(i) * MICROS), "fp_at": fp})
        await redis.zadd(store.maturation_key, {cid: fp + H}, nx=True)


def learner(redis: FakeRedis, emitted: list | None = None, **config: object) -> Learner:
    async def emit(d: ModelDrift) -> None:
        assert emitted is not None
        emitted.append(d)

    cfg = LearnerConfig(**{"lateness_s": 0.0, "warmup_days": 0.0, **config})
    return Learner(CustomerStore(redis, "p"), OnlineStore(redis, "p"), cfg, "b1",
                   emit=emit if emitted is not None else None)


async def watermark(redis: FakeRedis, ts: float) -> None:
    await redis.zadd("p:watermark", {"event_time": ts}, gt=True)


async def test_only_labels_past_the_watermark_mature_in_event_time_order() -> None:
    redis = FakeRedis()
    await seed(redis, 100)
    lrn = learner(redis)
    assert (await lrn.step()).learned == 0  # no watermark yet
    await watermark(redis, T0 + 9 * DAY + H)  # customers 0..9 have matured
    res = await lrn.step()
    assert res.learned == 10 and res.cursor == T0 + 9 * DAY + H
    assert (await lrn.step()).learned == 0  # nothing new: nothing learned twice
    await watermark(redis, T0 + 200 * DAY)
    assert (await lrn.step()).learned == 90
    labels = await redis.hgetall("p:online:labels")
    assert len(labels) == 100 and labels[b"c0003"] == b"1 100.0 1"


async def test_lateness_holds_labels_back() -> None:
    redis = FakeRedis()
    await seed(redis, 10)
    lrn = learner(redis, lateness_s=DAY)
    await watermark(redis, T0 + 5 * DAY + H)
    assert (await lrn.step()).learned == 5  # customer 5 needs the watermark one day further


async def test_the_same_labels_at_any_replay_speed() -> None:
    """Stepping after every day of event time or once at the end: the same model."""
    rng = random.Random(1)
    spends = [rng.choice([0.0, 0.0, 50.0, 300.0, 2000.0]) for _ in range(300)]
    fast, slow = FakeRedis(), FakeRedis()
    for r in (fast, slow):
        await seed(r, 300, spends.__getitem__)
    a, b = learner(fast, max_batch=7), learner(slow)
    for day in range(0, 400, 3):
        await watermark(fast, T0 + day * DAY + H)
        while (await a.step()).learned:
            pass
    await watermark(slow, T0 + 400 * DAY + H)
    await b.step()
    probe = BatchForecast(1, 0.7, 2.0, 400.0)
    assert a.state.model.correct(probe, {}) == b.state.model.correct(probe, {})
    assert a.state.learned == b.state.learned == 300
    assert await fast.hgetall("p:online:labels") != {}


async def test_warm_up_customers_are_not_learned_from() -> None:
    redis = FakeRedis()
    await seed(redis, 50)
    lrn = learner(redis, warmup_days=20.0)
    await watermark(redis, T0 + 60 * DAY + H)
    res = await lrn.step()
    assert (res.skipped, res.learned) == (20, 30)


async def test_a_restart_resumes_from_the_stored_state() -> None:
    redis = FakeRedis()
    await seed(redis, 40)
    first = learner(redis)
    await watermark(redis, T0 + 19 * DAY + H)
    await first.step()
    second = learner(redis)  # a new process: state from Redis
    await watermark(redis, T0 + 50 * DAY + H)
    assert (await second.step()).learned == 20
    version, model = await OnlineStore(redis, "p").load_model()
    assert version == 2 and model is not None and model.n_learned_ == 40


async def test_a_second_learner_never_interleaves() -> None:
    redis = FakeRedis()
    await seed(redis, 40)
    a, b = learner(redis), learner(redis)
    await watermark(redis, T0 + 9 * DAY + H)
    await a.step()
    await b.step()  # loads a's state (version 1): nothing new to learn
    await watermark(redis, T0 + 39 * DAY + H)
    assert (await a.step()).learned == 30
    online = OnlineStore(redis, "p")
    assert await online.save(b.state, expected_version=1) is None  # stale: refused
    assert (await b.step()).learned == 0  # b reloads version 2 and finds nothing new
    assert b.state.learned == 40


async def test_drift_is_emitted_after_the_change_with_the_action() -> None:
    redis = FakeRedis()
    await seed(redis, 1200, lambda i: 100.0 if i < 600 else 900.0)
    emitted: list[ModelDrift] = []
    lrn = learner(redis, emitted)
    for day in range(0, 1200, 50):
        await watermark(redis, T0 + day * DAY + H)
        await lrn.step()
    await watermark(redis, T0 + 1300 * DAY + H)
    await lrn.step()
    assert emitted, "no drift"
    change = T0 + 600 * DAY + H
    assert all(d.event_time.timestamp() >= change for d in emitted)
    assert emitted[0].action == "reset_window"
    assert emitted[0].statistic > emitted[0].previous_statistic
    summary = await OnlineStore(redis, "p").summary()
    assert summary["drifts"] == len(emitted) and summary["last_drift"]["detector"] == "ADWIN"


async def test_no_drift_on_a_stationary_error() -> None:
    rng = random.Random(7)
    redis = FakeRedis()
    await seed(redis, 1000, lambda i: rng.choice([0.0, 80.0, 120.0, 400.0]))
    emitted: list[ModelDrift] = []
    lrn = learner(redis, emitted)
    await watermark(redis, T0 + 1100 * DAY + H)
    await lrn.step()
    assert emitted == []


def test_online_model_takes_over_only_when_better() -> None:
    m = OnlineModel(min_labels=20, window=50)
    b = BatchForecast(0, 0.5, 1.0, 100.0)
    for _ in range(100):  # the batch model is exactly right: keep it
        m.learn(b, {}, 1, 100.0)
    f = m.forecast(b, {})
    assert f is not None and not f.corrected and f.expected_spend == 100.0
    for _ in range(300):  # it is now 10x off: the correction takes over
        m.learn(b, {}, 3, 1000.0)
    f = m.forecast(b, {})
    assert f is not None and f.corrected and f.expected_spend > 100.0
    assert f.expected_spend_mean == pytest.approx(1000.0)  # calibrated in the mean: x10


def test_online_model_round_trips_and_the_served_copy_swaps() -> None:
    m = OnlineModel(min_labels=1, window=5)
    b = BatchForecast(2, 0.3, 0.5, 50.0)
    for _ in range(50):
        m.learn(b, {"n_lines": 3}, 2, 500.0)
    copy = OnlineModel.from_bytes(m.to_bytes())
    assert copy.forecast(b, {"n_lines": 3}) == m.forecast(b, {"n_lines": 3})
    served = ServedModel()
    assert served.swap(3, copy) and not served.swap(2, m)  # never back to an older version
    online, models = served.score({"n_lines": 3}, {"segment": 2, "p_repeat": 0.3,
                                                   "expected_orders": 0.5,
                                                   "expected_spend": 50.0}, "b1")
    assert online is not None and online.model_version == 3 and online.corrected
    assert models == ["batch:b1", "online:3"]
    with pytest.raises(TypeError):
        OnlineModel.from_bytes(b"\x80\x05N.")  # pickle of None


def test_config_rejects_an_unknown_action() -> None:
    with pytest.raises(ValueError, match="BASKETCAST_DRIFT_ACTION"):
        LearnerConfig.from_env({"BASKETCAST_DRIFT_ACTION": "panic"})
    assert LearnerConfig.from_env({}).lateness_s == DAY



async def test_the_slowest_partition_holds_maturation_back() -> None:
    redis = FakeRedis()
    await seed(redis, 30)
    lrn = learner(redis)
    await redis.zadd("p:watermark", {"event_time": T0 + 29 * DAY + H,
                                     "partition:0": T0 + 29 * DAY + H,
                                     "partition:1": T0 + 9 * DAY + H})
    assert (await lrn.step()).learned == 10
    await redis.zadd("p:watermark", {"partition:1": T0 + 29 * DAY + H}, gt=True)
    assert (await lrn.step()).learned == 20


@settings(max_examples=25, deadline=None)
@given(max_batch=st.integers(1, 50), steps=st.lists(st.integers(1, 40), min_size=1, max_size=30),
       lateness_days=st.integers(0, 3))
def test_any_pace_of_watermarks_and_batches_learns_the_same(
    max_batch: int, steps: list[int], lateness_days: int,
) -> None:
    """Whatever the watermark's pace (replay speed) and the step size, once the watermark has
    passed every label the learner has learned the same labels in the same order."""

    async def run(paced: bool) -> tuple:
        rng = random.Random(3)
        spends = [rng.choice([0.0, 30.0, 250.0, 1500.0]) for _ in range(120)]
        redis = FakeRedis()
        await seed(redis, 120, spends.__getitem__)
        lrn = learner(redis, max_batch=max_batch if paced else 5000,
                      lateness_s=lateness_days * DAY)
        if paced:
            day = 0
            for step in steps:
                day += step
                await watermark(redis, T0 + day * DAY + H)
                await lrn.step()
        await watermark(redis, T0 + 200 * DAY + H)
        while (await lrn.step()).learned:
            pass
        probe = BatchForecast(2, 0.4, 1.5, 300.0)
        return (lrn.state.learned, lrn.state.model.correct(probe, {"n_lines": 2}),
                await redis.hgetall("p:online:labels") != {})

    assert asyncio.run(run(True)) == asyncio.run(run(False))


async def test_a_step_gives_the_scoring_loop_a_turn_every_ten_labels() -> None:
    """Each await on the scoring path waits for one slice of learning: slices of ~1 ms (10
    labels) keep a learner step out of the scores' latency (50-label slices added 40-60 ms),
    and the labels are read 50 customers a round trip (one read of 500 took 8-14 ms)."""
    redis = FakeRedis()
    await seed(redis, 200)
    lrn = learner(redis)
    await watermark(redis, T0 + 300 * DAY + H)
    learned_at_turns: list[int] = []
    stepping = True

    async def scoring_loop() -> None:
        while stepping:
            learned_at_turns.append(lrn.state.learned if lrn.state else 0)
            await asyncio.sleep(0)

    other = asyncio.create_task(scoring_loop())
    await asyncio.sleep(0)
    redis.pipelined.clear()
    result = await lrn.step()
    stepping = False
    await other
    assert result.learned == 200 and learned_at_turns[-1] == 200
    assert max(b - a for a, b in pairwise(learned_at_turns)) <= 10
    reads = [n for n in redis.pipelined if n > 1]  # the single-command pipelines are saves
    assert sum(reads) == 200 and max(reads) <= 50
