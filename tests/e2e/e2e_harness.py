"""Shared helpers of the end-to-end tests: worker processes, output readers, the two oracles.

The oracles are independent of the worker's code path:

- scores: `basketcast score` (the batch scorer) on the same log, row for row;
- Redis state: a pandas computation from the same log's invoices (`expected_state`).

Everything a test creates is named after its run id (topics, consumer group, Redis prefix),
so tests never see each other's data, and a broker shared with other people stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from offline.events import clean_total, is_first_purchase_candidate, product_lines
from schemas.dead_letter import DeadLetter
from schemas.invoice import InvoiceEvent
from schemas.scored import CustomerScored, score_event_id
from stream.aggregates import event_time
from stream.services import free_port
from stream.store import CustomerStore, state_view

ROOT = Path(__file__).resolve().parents[2]


def data_path() -> Path:
    """The shipped log: $BASKETCAST_DATA, else `../shared/data/` beside the repository."""
    given = os.environ.get("BASKETCAST_DATA")
    return Path(given) if given else ROOT.parent / "shared" / "data" / "online_retail_ii.parquet"


# --- one isolated run: topics, group, Redis prefix -----------------------------------------------


@dataclass(frozen=True)
class Run:
    """The names and addresses of one isolated pipeline (what the worker's env says)."""

    run_id: str
    bootstrap: str
    redis_url: str
    partitions: int = 4

    @property
    def invoices(self) -> str:
        return f"{self.run_id}-invoices"

    @property
    def scores(self) -> str:
        return f"{self.run_id}-scores"

    @property
    def dlq(self) -> str:
        return f"{self.run_id}-dlq"

    @property
    def drift(self) -> str:
        return f"{self.run_id}-drift"

    @property
    def topics(self) -> list[str]:
        return [self.invoices, self.scores, self.dlq, self.drift]

    @property
    def created_topics(self) -> list[str]:
        """Ours, and the one Faust creates for the group (to delete afterwards)."""
        return [*self.topics, f"{self.run_id}-__assignor-__leader"]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "REDIS_URL": self.redis_url,
            "BASKETCAST_APP_ID": self.run_id, "BASKETCAST_REDIS_PREFIX": self.run_id,
            "BASKETCAST_TOPIC_INVOICES": self.invoices, "BASKETCAST_TOPIC_SCORES": self.scores,
            "BASKETCAST_TOPIC_DLQ": self.dlq, "BASKETCAST_TOPIC_DRIFT": self.drift,
            "BASKETCAST_PARTITIONS": str(self.partitions),
            "PYTHONPATH": str(ROOT),
            **extra,
        }


def replay_cmd(data: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "stream", "replay", "--data", str(data), "--no-progress",
            *flags]


def replay(run: Run, data: Path, cwd: Path, *flags: str, timeout: float = 600) -> str:
    """`basketcast replay` into the run's input topic; returns its stdout."""
    done = subprocess.run(replay_cmd(data, *flags), env=run.env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def start_replay(run: Run, data: Path, cwd: Path, *flags: str) -> subprocess.Popen:
    """`basketcast replay` in the background (output in cwd/replay.log)."""
    with open(cwd / "replay.log", "ab") as f:
        return subprocess.Popen(replay_cmd(data, *flags), env=run.env(), cwd=cwd, stdout=f,
                                stderr=subprocess.STDOUT)


def write_slice(log: Path, out: Path, invoices: int,
                events: Sequence[InvoiceEvent] | None = None) -> tuple[Path, list[InvoiceEvent]]:
    """The first `invoices` invoices of `log` (in replay order) as a line-level parquet file,
    and as events; `events`: all of the log's, if already loaded."""
    from stream.replay import load_events

    events = list(events[:invoices]) if events is not None else load_events(log, limit=invoices)
    ids = {ev.invoice_id for ev in events}
    raw = pd.read_parquet(log)
    col = next(c for c in raw.columns if c.lower().replace(" ", "") in ("invoice", "invoiceno"))
    raw[raw[col].astype(str).isin(ids)].to_parquet(out, index=False)
    again = load_events(out)
    assert [ev.invoice_id for ev in again] == [ev.invoice_id for ev in events]
    return out, again


def batch_scores(model: Path, data: Path, out: Path) -> pd.DataFrame:
    """`basketcast score` on `data`: the oracle, indexed by customer id."""
    subprocess.run([sys.executable, "-m", "stream.cli", "score", "--model", str(model),
                    "--data", str(data), "--out", str(out)],
                   check=True, cwd=ROOT, timeout=900, capture_output=True)
    df = pd.read_parquet(out)
    df["customer_id"] = df["customer_id"].astype(str)
    return df.set_index("customer_id")


# --- worker processes ----------------------------------------------------------------------------

#: Crash lines of a worker log: a traceback, or Faust/mode marking a service as crashed.
CRASH_MARKERS = ("Traceback (most recent call last)", "Crashed reason")


class WorkerProc:
    """`python -m stream worker` as a child process; every (re)start gets its own log file."""

    def __init__(self, run: Run, model: Path, workdir: Path, name: str = "worker",
                 **env: str) -> None:
        self.run, self.model, self.name = run, model, name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_env = env
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.logs: list[Path] = []

    def start(self) -> int:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = self.workdir / f"{self.name}-{self.starts}.log"
        self.logs.append(log)
        env = self.run.env(BASKETCAST_WEB_PORT=str(free_port()), **self.extra_env)
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream", "worker", "--model", str(self.model)],
                env=env, cwd=self.workdir, stdout=f, stderr=subprocess.STDOUT,
            )
        return self.proc.pid

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no flush."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def tail(self, chars: int = 4000) -> str:
        return self.logs[-1].read_text(errors="replace")[-chars:] if self.logs else ""

    def assert_alive(self) -> None:
        if not self.alive():
            assert self.proc is not None
            pytest.fail(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")

    def crash_lines(self) -> list[str]:
        text = self.log_text()
        return [ln for ln in text.splitlines() if any(m in ln for m in CRASH_MARKERS)]


# --- reading the outputs -------------------------------------------------------------------------


class Outputs:
    """Everything the run's worker(s) emitted on `scores` and the dead-letter topic (which must
    exist already, with `run.partitions` partitions: `ensure_topics(..., run.topics, ...)`)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.scores: list = []  # ConsumerRecords, in arrival order
        self.dead: list = []
        self.first: dict[str, bytes] = {}  # event_id -> value of its first copy
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Outputs:
        # No consumer group: a group would forget its uncommitted position when the broker
        # restarts and read everything again (duplicates of the reader, not of the topic).
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.run.bootstrap, group_id=None, auto_offset_reset="earliest",
            fetch_max_wait_ms=100, enable_auto_commit=False,
        )
        await self._consumer.start()
        self._consumer.assign([TopicPartition(t, p) for t in (self.run.scores, self.run.dlq)
                               for p in range(self.run.partitions)])
        await self._consumer.seek_to_beginning()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> int:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=timeout_ms)
        n = 0
        for recs in batch.values():
            for r in recs:
                n += 1
                if r.topic == self.run.scores:
                    self.scores.append(r)
                    self.first.setdefault(json.loads(r.value)["event_id"], r.value)
                else:
                    self.dead.append(r)
        return n

    @property
    def distinct(self) -> int:
        return len(self.first)

    @property
    def duplicates(self) -> int:
        return len(self.scores) - len(self.first)


async def group_lag(bootstrap: str, group: str, topic: str) -> int | None:
    """Records of `topic` the consumer group has not committed yet (None: not known yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        await admin.start()
        await probe.start()
        described = await admin.describe_topics([topic])
        parts = [p["partition"] for p in described[0]["partitions"]]
        if not parts:
            return None
        committed = await admin.list_consumer_group_offsets(group)
        ends = await probe.end_offsets([TopicPartition(topic, p) for p in parts])
        done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
        return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())
    except Exception:  # noqa: BLE001 - group or topic not there yet, broker restarting
        return None
    finally:
        for closing in (probe.stop(), admin.close()):
            with contextlib.suppress(Exception):
                await closing


async def group_committed(bootstrap: str, group: str) -> int | None:
    """Sum of the consumer group's committed offsets (None: not known yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        committed = await admin.list_consumer_group_offsets(group)
        return sum(max(0, meta.offset) for meta in committed.values())
    except Exception:  # noqa: BLE001 - group not there yet, broker restarting
        return None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def wait_until(cond: Callable[[], object], what: str, timeout: float,
                     outputs: Outputs | None = None, workers: Sequence[WorkerProc] = (),
                     ) -> None:
    """Poll `outputs` (if any) until `cond()` holds; fail at the deadline or if a worker died."""
    deadline = time.monotonic() + timeout
    while not cond():
        for w in workers:
            w.assert_alive()
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {w.name} ---\n{w.tail()}" for w in workers)
            got = (f" ({outputs.distinct} scores, {len(outputs.dead)} dead letters)"
                   if outputs else "")
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{got}\n{tails}")
        if outputs is not None:
            await outputs.poll(200)
        else:
            await asyncio.sleep(0.2)


async def drain(outputs: Outputs, run: Run, *, scores: int, dead: int = 0, timeout: float,
                workers: Sequence[WorkerProc] = ()) -> None:
    """Wait until `scores` distinct scores and `dead` dead letters arrived AND the group
    committed every input record (so every invoice reached Redis); then read 2 s more."""
    lag_state: dict[str, float | int | None] = {"at": 0.0, "lag": None}

    def done() -> bool:
        if outputs.distinct < scores or len(outputs.dead) < dead:
            return False
        return lag_state["lag"] == 0

    deadline = time.monotonic() + timeout
    while not done():
        for w in workers:
            w.assert_alive()
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {w.name} ---\n{w.tail()}" for w in workers)
            pytest.fail(f"not drained after {timeout:.0f}s: {outputs.distinct}/{scores} scores, "
                        f"{len(outputs.dead)}/{dead} dead letters, lag {lag_state['lag']}\n"
                        f"{tails}")
        await outputs.poll(200)
        if outputs.distinct >= scores and time.monotonic() - float(lag_state["at"]) > 1.0:
            lag_state["lag"] = await group_lag(run.bootstrap, run.run_id, run.invoices)
            lag_state["at"] = time.monotonic()
    settle = time.monotonic() + 2.0
    while time.monotonic() < settle:
        await outputs.poll(200)


# --- oracle 1: the scores ------------------------------------------------------------------------


@dataclass
class ScoreCheck:
    records: int
    distinct: int
    duplicates: int
    duplicated_customers: list[str] = field(default_factory=list)


def check_scores(outputs: Outputs, oracle: pd.DataFrame) -> ScoreCheck:
    """Scores deduplicated by event_id == the batch scorer row for row (1e-9); every duplicate
    is byte-identical to its first copy; the key is the customer id."""
    first: dict[str, bytes] = {}
    dup_customers: list[str] = []
    for r in outputs.scores:
        doc = json.loads(r.value)
        assert r.key.decode() == doc["customer_id"], "score keyed by another customer"
        eid = doc["event_id"]
        if eid in first:
            assert r.value == first[eid], f"duplicate {eid} differs from its first copy"
            dup_customers.append(doc["customer_id"])
        else:
            first[eid] = r.value
    scores = [CustomerScored.model_validate_json(v) for v in first.values()]
    by_customer = {s.customer_id: s for s in scores}
    assert len(by_customer) == len(scores), "a customer was scored under two event ids"
    missing = set(oracle.index) - set(by_customer)
    extra = set(by_customer) - set(oracle.index)
    assert not missing and not extra, (
        f"{len(missing)} customers missing (e.g. {sorted(missing)[:5]}), "
        f"{len(extra)} unexpected (e.g. {sorted(extra)[:5]})")
    for cid, s in by_customer.items():
        o = oracle.loc[cid]
        assert s.invoice_id == str(o["invoice_id"]), cid
        assert s.first_purchase_at == pd.Timestamp(o["first_purchase_at"]).to_pydatetime(), cid
        assert (s.segment, s.segment_label) == (int(o["segment"]), o["segment_label"]), cid
        for col in ("p_repeat", "expected_orders", "expected_spend"):
            assert abs(getattr(s, col) - float(o[col])) <= 1e-9, (cid, col, getattr(s, col),
                                                                   float(o[col]))
        assert s.model_version == o["model_version"]
        assert s.event_id == score_event_id(s.model_version, cid, s.invoice_id)
    return ScoreCheck(len(outputs.scores), len(first), len(outputs.scores) - len(first),
                      dup_customers)


# --- oracle 2: the Redis state -------------------------------------------------------------------


def expected_state(events: Iterable[InvoiceEvent], category_of,
                   firsts: Mapping[str, str] | None = None,
                   horizon_days: int | None = None) -> pd.DataFrame:
    """Per customer, with pandas from the log: the figures the Lua script keeps, and the set of
    applied invoice ids. With `firsts` (customer -> first purchase, from the batch scorer) and
    `horizon_days`, also the horizon label so far: h_orders, h_spend, h_items over the invoices
    after the first purchase (in log order) up to first purchase + horizon, inclusive."""
    rows = []
    for ev in events:
        if ev.customer_id is None:
            continue
        kind = ("C" if ev.is_cancellation else "A" if ev.is_adjustment
                else "P" if is_first_purchase_candidate(ev) else "O")
        counts = kind in ("P", "C")
        lines = product_lines(ev) if counts else []
        row = {"customer_id": ev.customer_id, "invoice_id": ev.invoice_id, "kind": kind,
               "ts": event_time(ev.invoiced_at), "spend": clean_total(ev) if counts else 0.0,
               "items": sum(ln.quantity for ln in lines)}
        for ln in lines:
            key = f"cat_{category_of(ln.stock_code, ln.description)}"
            row[key] = row.get(key, 0.0) + ln.quantity * ln.unit_price
        rows.append(row)
    df = pd.DataFrame(rows)
    kinds = pd.crosstab(df["customer_id"], df["kind"])
    for k in "PCAO":
        if k not in kinds:
            kinds[k] = 0
    agg = df.groupby("customer_id").agg(
        spend=("spend", "sum"), items=("items", "sum"), first_seen=("ts", "min"),
        last_seen=("ts", "max"), invoices=("invoice_id", lambda s: sorted(set(s))),
        n_invoices=("invoice_id", "size"),
    )
    cats = df.filter(like="cat_").groupby(df["customer_id"]).sum(min_count=1)
    out = agg.join(kinds).join(cats)
    cat_cols = [c for c in out.columns if c.startswith("cat_")]
    out[cat_cols] = out[cat_cols].fillna(0.0)
    if firsts is not None and horizon_days is not None:
        df["pos"] = range(len(df))  # log order
        fp = (df[df["invoice_id"] == df["customer_id"].map(firsts)].groupby("customer_id")
              .first()[["ts", "pos"]].rename(columns={"ts": "fp_ts", "pos": "fp_pos"}))
        df = df.join(fp, on="customer_id")
        window = df[(df["pos"] > df["fp_pos"])
                    & (df["ts"] <= df["fp_ts"] + horizon_days * 86400.0)]
        labels = window.groupby("customer_id").agg(
            h_orders=("kind", lambda k: int((k == "P").sum())), h_spend=("spend", "sum"),
            h_items=("items", "sum"))
        out = out.join(labels)
        scored = out.index.isin(list(firsts))
        for col in ("h_orders", "h_spend", "h_items"):
            out.loc[scored, col] = out.loc[scored, col].fillna(0)
    return out


async def read_states(client: aioredis.Redis, prefix: str, ids: Sequence[str],
                      chunk: int = 500) -> dict[str, dict | None]:
    """CustomerStore.customer for many customers, pipelined."""
    store = CustomerStore(client, prefix)
    out: dict[str, dict | None] = {}
    for i in range(0, len(ids), chunk):
        part = ids[i:i + chunk]
        pipe = client.pipeline(transaction=False)
        for cid in part:
            for key in store.keys(cid):
                pipe.hgetall(key)
        res = await pipe.execute()
        for j, cid in enumerate(part):
            out[cid] = state_view(*res[3 * j:3 * j + 3])
    return out


async def customer_ids_in_redis(client: aioredis.Redis, prefix: str) -> set[str]:
    base = f"{prefix}:cust:{{"
    ids = set()
    async for key in client.scan_iter(match=f"{prefix}:cust:*", count=5000):
        k = key.decode()
        if k.endswith("}"):
            ids.add(k[len(base):-1])
    return ids


async def check_redis(client: aioredis.Redis, prefix: str, expected: pd.DataFrame,
                      scored: Iterable[str]) -> int:
    """Every customer's Redis state == pandas; no customer more or less; returns how many."""
    scored = set(scored)
    present = await customer_ids_in_redis(client, prefix)
    want = set(map(str, expected.index))
    assert present == want, (f"Redis has {len(present - want)} unexpected customers "
                             f"(e.g. {sorted(present - want)[:5]}), misses {len(want - present)} "
                             f"(e.g. {sorted(want - present)[:5]})")
    states = await read_states(client, prefix, sorted(want))
    for cid, row in expected.iterrows():
        state = states[str(cid)]
        assert state is not None, cid
        # the at-most-once guard holds exactly the log's invoices: none lost, none twice
        assert state["invoices"] == row["invoices"], cid
        assert float(state.get("spend", 0)) == pytest.approx(row["spend"], abs=1e-6), cid
        assert int(state.get("items", 0)) == row["items"], cid
        for kind, fld in (("P", "orders"), ("C", "cancellations"), ("A", "adjustments"),
                          ("O", "others")):
            assert int(state.get(fld, 0)) == row[kind], (cid, fld, state.get(fld), row[kind])
        assert float(state["first_seen"]) == row["first_seen"], cid
        assert float(state["last_seen"]) == row["last_seen"], cid
        cats = {f"cat_{c}": a for c, a in state["category_spend"].items()}
        for col in (c for c in expected.columns if c.startswith("cat_")):
            assert cats.get(col, 0.0) == pytest.approx(row[col], abs=1e-6), (cid, col)
        assert ("fp_invoice" in state) == (str(cid) in scored), cid
        if "h_orders" in expected.columns and str(cid) in scored:
            assert int(state["h_orders"]) == row["h_orders"], (cid, "h_orders")
            assert int(state["h_items"]) == row["h_items"], (cid, "h_items")
            assert float(state["h_spend"]) == pytest.approx(row["h_spend"], abs=1e-6), cid
    store = CustomerStore(client, prefix)
    assert await client.zcard(store.maturation_key) == len(scored)
    return len(want)


def dead_letters(outputs: Outputs) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(r.value) for r in outputs.dead]


# --- clean-up ------------------------------------------------------------------------------------


async def drop_prefix(client: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=5000)]
    for i in range(0, len(keys), 1000):
        await client.delete(*keys[i:i + 1000])


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    except Exception:  # noqa: BLE001, S110 - clean-up is best effort
        pass
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


#: Measured figures of this session's tests (printed in the terminal summary by conftest).
FIGURES: list[dict] = []
