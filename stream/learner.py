"""Online learning: mature labels by event time, learn, watch drift, persist, emit `ModelDrift`.

What the worker leaves for the learner, in Redis (see `stream.store`):

- every scored customer in the sorted set `{prefix}maturation`, scored by first purchase +
  horizon (epoch s), registered with ZADD NX after the first purchase is stored;
- the event-time watermark: `{prefix}watermark`, member `event_time` (ZADD GT);
- in the customer's hash: `features` (JSON, as computed at the first purchase), `score` (the
  emitted `CustomerScored` JSON) and the horizon label so far, `h_orders`, `h_spend_micros`
  (invoices applied after the first purchase with time <= first purchase + horizon, the
  window of `offline.labels.realised_outcome`).

`Learner.step` (run by ONE worker: a Faust leader timer, see `stream.online`) takes the customers
whose maturation time is at most `watermark - lateness` and above its cursor (the watermark:
the smallest of the per-partition watermarks `partition:<n>`, as partitions are read at
different paces; a partition that never had an event does not count, an idle one holds
maturation back), in maturation
order (time, then customer id), so the sequence it learns from depends on event time only:
a replay at any speed, or live traffic, gives the same labels in the same order. For each one,
unless first seen in the stream's warm-up (its first `warmup_days`: "new" customers there
are often old customers, as in `offline.labels.cohort_mask`), it feeds the drift monitor
(`stream.drift`) and the online model (`stream.online_model`). Then it writes its whole state
(model, monitor, cursor, counters) to the hash `{prefix}online` in one HSET, guarded by
WATCH on the version it loaded, so two learners (e.g. during a rebalance) never interleave
and a crash never learns a label twice or skips one. The maturation set is left as it is (a
record of what was scored); the cursor says what has been learned.

The hash `{prefix}online`: `version` (int, +1 per step that learned something), `state`
(pickle of `LearnerState`), `model` (the `OnlineModel` alone, what the scorers load),
`summary` (JSON for /health), `drift` (JSON of the last `ModelDrift`), `drifts` (count).
The hash `{prefix}online:labels`: customer id -> "orders spend version", the label learned
(an audit trail: the integration test compares it with `offline.labels.outcomes`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import pickle
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from schemas.drift import ModelDrift, drift_event_id
from stream.drift import MONITORED, Detection, DriftMonitor
from stream.online_model import BatchForecast, OnlineModel
from stream.store import MICROS, CustomerStore, _text

log = logging.getLogger(__name__)

DAY = 86_400.0
#: Labels read and learned between two turns of the event loop (~1 ms of River updates).
#: Every await on the scoring path (fetch, Redis, Kafka) waits for one slice; slices of 50
#: (~5 ms) added a whole learner step, 40-60 ms, to the scores made during it.
LEARN_SLICE = 10
#: Matured customers' state read in one round trip (one read of 500 took 8-14 ms, in the loop).
READ_SLICE = 50

#: Environment variable -> (default, meaning). Read by `LearnerConfig.from_env`.
ENV_VARS: dict[str, tuple[str, str]] = {
    "BASKETCAST_ONLINE_LEARNING": ("1", "1: run the online learner and serve its forecast"),
    "BASKETCAST_LEARNER_INTERVAL_S": ("1.0", "seconds between two learner steps (leader)"),
    "BASKETCAST_LEARNER_LATENESS_S": (
        "86400", "event-time slack: a label matures at first purchase + horizon + this"),
    "BASKETCAST_LEARNER_WARMUP_DAYS": (
        "90", "customers first seen in the stream's first N days are not learned from"),
    "BASKETCAST_LEARNER_MAX_BATCH": ("500", "matured customers learned per step at most"),
    "BASKETCAST_DRIFT_DELTA": ("0.002", "ADWIN confidence delta (smaller: fewer detections)"),
    "BASKETCAST_DRIFT_ACTION": (
        "reset_window", "on drift: reset_window | reset_model | none (see schemas.drift)"),
    "BASKETCAST_ONLINE_RELOAD_S": ("1.0", "seconds between two checks of the model version"),
}


@dataclass(frozen=True)
class LearnerConfig:
    """The learner's settings (environment variables in `ENV_VARS`).

    >>> LearnerConfig.from_env({"BASKETCAST_LEARNER_LATENESS_S": "0"}).lateness_s
    0.0
    """

    enabled: bool = True
    interval_s: float = 1.0
    lateness_s: float = DAY
    warmup_days: float = 90.0
    max_batch: int = 500
    drift_delta: float = 0.002
    drift_action: str = "reset_window"
    reload_s: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LearnerConfig:
        env = os.environ if env is None else env

        def get(name: str) -> str:
            return env.get(name, ENV_VARS[name][0])

        action = get("BASKETCAST_DRIFT_ACTION")
        if action not in ("reset_window", "reset_model", "none"):
            raise ValueError(f"BASKETCAST_DRIFT_ACTION must be reset_window, reset_model or "
                             f"none, got {action!r}")
        return cls(
            enabled=get("BASKETCAST_ONLINE_LEARNING").lower() in ("1", "true", "yes", "on"),
            interval_s=float(get("BASKETCAST_LEARNER_INTERVAL_S")),
            lateness_s=float(get("BASKETCAST_LEARNER_LATENESS_S")),
            warmup_days=float(get("BASKETCAST_LEARNER_WARMUP_DAYS")),
            max_batch=int(get("BASKETCAST_LEARNER_MAX_BATCH")),
            drift_delta=float(get("BASKETCAST_DRIFT_DELTA")),
            drift_action=action,
            reload_s=float(get("BASKETCAST_ONLINE_RELOAD_S")),
        )


@dataclass
class LearnerState:
    """Everything the learner persists (one pickle): a restart resumes from it."""

    model: OnlineModel
    monitor: DriftMonitor
    version: int = 0
    cursor: float = -math.inf  # labels with maturation time <= cursor have been learned
    origin: float | None = None  # the stream's earliest first purchase seen (epoch s)
    learned: int = 0
    skipped_warmup: int = 0
    missing: int = 0
    drifts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StepResult:
    learned: int = 0
    skipped: int = 0
    detections: list[ModelDrift] = field(default_factory=list)
    cursor: float | None = None


class OnlineStore:
    """The learner's hash in Redis, `{prefix}online`."""

    def __init__(self, redis: Redis, prefix: str = "") -> None:
        self.redis = redis
        self.prefix = prefix if not prefix or prefix.endswith(":") else prefix + ":"
        self.key = f"{self.prefix}online"
        self.labels_key = f"{self.prefix}online:labels"

    async def learned_label(self, customer_id: str) -> tuple[int, float, int] | None:
        """(orders, spend, model version) the online model learned for a customer, if any."""
        raw = await self.redis.hget(self.labels_key, customer_id)
        if raw is None:
            return None
        orders, spend, version = _text(raw).split()
        return int(orders), float(spend), int(version)

    async def version(self) -> int:
        v = await self.redis.hget(self.key, "version")
        return int(v) if v is not None else 0

    async def load_model(self) -> tuple[int, OnlineModel | None]:
        version, blob = await self.redis.hmget(self.key, ["version", "model"])
        if version is None or blob is None:
            return 0, None
        return int(version), OnlineModel.from_bytes(blob)

    async def load_state(self) -> LearnerState | None:
        blob = await self.redis.hget(self.key, "state")
        if blob is None:
            return None
        state = pickle.loads(blob)  # noqa: S301 - our own Redis, written by `save`
        if not isinstance(state, LearnerState):
            raise TypeError(f"{self.key} holds no LearnerState")
        return state

    async def summary(self) -> dict[str, Any]:
        """What /health shows: versions, counters, drift state (without loading the model)."""
        raw = await self.redis.hmget(self.key, ["version", "summary", "drift", "drifts"])
        version, summary, drift, drifts = raw
        return {
            "version": int(version) if version is not None else 0,
            **(json.loads(summary) if summary else {}),
            "drifts": int(drifts) if drifts is not None else 0,
            "last_drift": json.loads(drift) if drift else None,
        }

    async def save(self, state: LearnerState, expected_version: int | None) -> bytes | None:
        """Write the state if the stored version is still `expected_version` (None: absent).

        Returns the model blob written, or None when another learner got there first.
        """
        model_blob = state.model.to_bytes()
        summary = {
            "cursor": None if math.isinf(state.cursor) else state.cursor,
            "origin": state.origin,
            "learned": state.learned,
            "skipped_warmup": state.skipped_warmup,
            "missing": state.missing,
            "model": state.model.summary(),
            "monitor": state.monitor.state(),
        }
        mapping: dict[str, Any] = {
            "version": state.version,
            "state": pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL),
            "model": model_blob,
            "summary": json.dumps(summary),
            "drifts": len(state.drifts),
        }
        if state.drifts:
            mapping["drift"] = json.dumps(state.drifts[-1])
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(self.key)
                current = await pipe.hget(self.key, "version")
                if (int(current) if current is not None else None) != expected_version:
                    await pipe.unwatch()
                    return None
                pipe.multi()
                pipe.hset(self.key, mapping=mapping)
                await pipe.execute()
            except WatchError:
                return None
        return model_blob


Emit = Callable[[ModelDrift], Awaitable[None]]


class Learner:
    """One learner step at a time; see the module docstring.

    `on_model` is called with (version, model) after each save that changed the model (the
    worker's own scorer then swaps it in without waiting for its reload timer).
    """

    def __init__(
        self,
        store: CustomerStore,
        online: OnlineStore,
        config: LearnerConfig,
        batch_model_version: str,
        emit: Emit | None = None,
        on_model: Callable[[int, OnlineModel], None] | None = None,
        on_learned: Callable[[int, int], None] | None = None,
    ) -> None:
        self.store = store
        self.online = online
        self.config = config
        self.batch_model_version = batch_model_version
        self.emit = emit
        self.on_model = on_model
        self.on_learned = on_learned
        self.state: LearnerState | None = None

    def _fresh(self) -> LearnerState:
        return LearnerState(OnlineModel(), DriftMonitor(delta=self.config.drift_delta))

    async def _sync(self) -> int | None:
        """Make the in-memory state the stored one; returns the stored version (None: none)."""
        stored = await self.online.redis.hget(self.online.key, "version")
        stored_version = int(stored) if stored is not None else None
        if self.state is None or stored_version != self.state.version:
            loaded = await self.online.load_state() if stored_version is not None else None
            self.state = loaded or self._fresh()
            log.info("event=learner_state_loaded version=%s cursor=%s learned=%d",
                     stored_version, self.state.cursor, self.state.learned)
        return stored_version

    async def _matured(self, after: float, upto: float) -> tuple[list[tuple[str, float]], float]:
        """Customers with maturation time in (after, upto], in order, at most ~max_batch;
        and the cursor to move to once they are learned."""
        redis, key, n = self.store.redis, self.store.maturation_key, self.config.max_batch
        low = "-inf" if math.isinf(after) else f"({after!r}"
        rows = await redis.zrangebyscore(key, low, repr(upto), start=0, num=n, withscores=True)
        if len(rows) < n:
            return [(_text(m), float(s)) for m, s in rows], upto
        last = float(rows[-1][1])
        ties = await redis.zrangebyscore(key, repr(last), repr(last), withscores=True)
        seen = {m for m, _ in rows}
        rows = list(rows) + [(m, s) for m, s in ties if m not in seen]
        return [(_text(m), float(s)) for m, s in rows], last

    async def watermark(self) -> float | None:
        """The event time every input partition has been read up to: the smallest partition
        watermark (the global one if the worker wrote none)."""
        rows = await self.store.redis.zrangebyscore(self.store.watermark_key, "-inf", "+inf",
                                                    withscores=True)
        marks = {_text(m): float(s) for m, s in rows}
        parts = [s for m, s in marks.items() if m.startswith("partition:")]
        return min(parts) if parts else marks.get("event_time")

    async def step(self) -> StepResult:
        """Learn every label matured since the last step (up to `max_batch`), save, emit."""
        result = StepResult()
        stored_version = await self._sync()
        state = self.state
        assert state is not None
        watermark = await self.watermark()
        if watermark is None:
            return result
        upto = float(watermark) - self.config.lateness_s
        if upto <= state.cursor:
            return result
        members, cursor = await self._matured(state.cursor, upto)
        rows: list[list[bytes | None]] = []
        for i in range(0, len(members), READ_SLICE):
            pipe = self.store.redis.pipeline(transaction=False)
            for cid, _ in members[i:i + READ_SLICE]:
                pipe.hmget(self.store.keys(cid)[0], ["score", "features", "h_orders",
                                                     "h_spend_micros", "fp_at"])
            rows += await pipe.execute()
        # River updates (~0.1 ms a label) in short slices on the event loop, which scores
        # between two slices: a thread fought the scoring loop for the interpreter lock, and
        # pushed p99 at 200 first purchases/s past 100 ms while it learned
        detections: list[Detection] = []
        learned: dict[str, str] = {}
        for i in range(0, len(members), LEARN_SLICE):
            found, taken = self._learn(state, members[i:i + LEARN_SLICE],
                                       rows[i:i + LEARN_SLICE], result)
            detections += found
            learned.update(taken)
            await asyncio.sleep(0)
        state.cursor = cursor
        result.cursor = cursor
        if result.learned:
            state.version += 1
        drifts = [self._drift_event(d, state.version) for d in detections]
        state.drifts.extend(json.loads(d.model_dump_json()) for d in drifts)
        if learned:  # the labels learned, for audits and /customers (idempotent)
            await self.store.redis.hset(self.online.labels_key, mapping=learned)
        blob = await self.online.save(state, stored_version)
        if blob is None:
            log.warning("event=learner_conflict expected_version=%s: another learner saved "
                        "first; reloading", stored_version)
            self.state = None
            return StepResult()
        result.detections = drifts
        if result.learned or result.skipped:
            log.info("event=learner_step learned=%d skipped=%d cursor=%s version=%d "
                     "recent_mae_batch=%.1f recent_mae_online=%.1f taken_over=%s",
                     result.learned, result.skipped, _iso(cursor), state.version,
                     state.model.mae_batch_.get(), state.model.mae_online_.get(),
                     state.model.taken_over)
        if self.on_learned is not None:
            self.on_learned(result.learned, len(drifts))
        if result.learned and self.on_model is not None:
            self.on_model(state.version, OnlineModel.from_bytes(blob))
        for d in drifts:
            log.warning("event=model_drift detector=%s event_time=%s statistic=%.4f "
                        "previous=%.4f observations=%d action=%s", d.detector,
                        d.event_time.isoformat(), d.statistic, d.previous_statistic,
                        d.observations, d.action)
            if self.emit is not None:
                await self.emit(d)
        return result

    def _learn(self, state: LearnerState, members: list[tuple[str, float]], rows: list,
               result: StepResult) -> tuple[list[Detection], dict[str, str]]:
        """Feed matured labels, in order, to the drift monitor and the online model."""
        detections: list[Detection] = []
        learned: dict[str, str] = {}
        for (_cid, due), (score, features, h_orders, h_spend, fp_at) in zip(
                members, rows, strict=True):
            if score is None or fp_at is None:
                state.missing += 1
                continue
            fp = float(fp_at)
            if state.origin is None:  # the first label to mature: the earliest first purchase
                state.origin = fp
            if fp < state.origin + self.config.warmup_days * DAY:
                state.skipped_warmup += 1
                result.skipped += 1
                continue
            doc = json.loads(score)
            batch = BatchForecast(int(doc["segment"]), float(doc["p_repeat"]),
                                  float(doc["expected_orders"]), float(doc["expected_spend"]))
            orders = int(h_orders or 0)
            spend = max(int(h_spend or 0) / MICROS, 0.0)
            hit = state.monitor.update(spend, batch.expected_spend, due)
            if hit is not None:
                detections.append(hit)
                self._act(state)
            state.model.learn(batch, json.loads(features) if features else {}, orders, spend)
            learned[_cid] = f"{orders} {spend!r} {state.version + 1}"
            state.learned += 1
            result.learned += 1
        return detections, learned

    def _act(self, state: LearnerState) -> None:
        if self.config.drift_action == "reset_window":
            state.model.reset_window()
        elif self.config.drift_action == "reset_model":
            state.model.reset()

    def _drift_event(self, d: Detection, online_version: int) -> ModelDrift:
        return ModelDrift(
            event_id=drift_event_id(d.detector, MONITORED, d.event_time),
            detector=d.detector,
            params={"delta": d.delta},
            monitored=MONITORED,
            statistic=d.mean_after,
            previous_statistic=d.mean_before,
            observations=d.observations,
            event_time=datetime.fromtimestamp(d.event_time, UTC),
            action=self.config.drift_action,  # type: ignore[arg-type]
            batch_model_version=self.batch_model_version,
            online_model_version=online_version,
            detected_at=datetime.now(UTC),
        )


def _iso(ts: float) -> str:
    return "-" if math.isinf(ts) else datetime.fromtimestamp(ts, UTC).isoformat()


def install_learner(app: Any, settings: Any, processor: Any) -> None:
    """Attach the learner, the model reload, the metrics and the web views to `app`
    (see `stream.online`)."""
    from stream.online import install

    install(app, settings, processor)
