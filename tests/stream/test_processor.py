"""The batch processor on a real Redis: one batch, one model call, retries while Redis is down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from itertools import pairwise

import pytest
import redis.asyncio as aioredis
from stream_fakes import FakeBundle, invoice_json

import stream.processor as processor_module
import stream.store as store_module
from schemas.scored import CustomerScored
from stream.fast_op import NATIVE
from stream.processor import TURN_EVERY, BatchProcessor, RawEvent
from stream.retry import Backoff
from stream.scoring import Scorer
from stream.settings import Settings
from stream.store import CustomerStore, InvoiceOp

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True, params=["native_reader", "python_path"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the native reader and without it: the same outcomes either way."""
    if request.param == "python_path":
        monkeypatch.setattr(processor_module, "op_reader", lambda *args: None)
    elif not NATIVE:
        pytest.skip("stream._fastop not built")
    return request.param


def test_the_native_reader_is_used_unless_switched_off(reader: str) -> None:
    assert (BatchProcessor(CustomerStore(None), Scorer(FakeBundle())).read_op is None) == (
        reader == "python_path")
    assert BatchProcessor(CustomerStore(None), Scorer(FakeBundle()), native=False).read_op is None
    assert Settings.from_env({"BASKETCAST_NATIVE_READER": "0"}).native_reader == 0


@pytest.fixture
async def client(redis_url: str, unique_id: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.from_url(redis_url)
    yield c
    keys = [k async for k in c.scan_iter(match=f"{unique_id}:*", count=10_000)]
    if keys:
        await c.delete(*keys)
    await c.aclose()


def raws(*values: bytes) -> list[RawEvent]:
    return [RawEvent(v, b"k", "invoices", 0, i) for i, v in enumerate(values)]


async def test_one_batch_one_model_call(client: aioredis.Redis, unique_id: str) -> None:
    bundle = FakeBundle()
    proc = BatchProcessor(CustomerStore(client, unique_id), Scorer(bundle))
    out = await proc.process(raws(
        invoice_json("1", "a"), invoice_json("2", "b"), invoice_json("3", "a", "2010-01-05"),
        invoice_json("1", "a"), invoice_json("4", None), b"oops",
    ))
    assert bundle.calls == 1
    assert sorted(cid for cid, _ in out.scores) == ["a", "a", "b"]  # "1" re-emitted once
    assert out.counts["first"] == 2 and out.counts["dup_first"] == 1
    assert out.counts["applied"] == 1 and out.counts["guests"] == 1
    assert out.counts["dead_letter:not_json"] == 1
    a1, a2 = [CustomerScored.model_validate_json(v) for cid, v in out.scores if cid == "a"]
    assert a1 == a2 and a1.invoice_id == "1"
    again = await proc.process(raws(invoice_json("1", "a"), invoice_json("2", "b")))
    expected = dict(out.scores)
    assert again.scores == [("a", expected["a"]), ("b", expected["b"])]
    assert bundle.calls == 1  # nothing new to score


class FlakyStore(CustomerStore):
    """Raises ConnectionError on the first `failures` calls of each step."""

    def __init__(self, redis: aioredis.Redis, prefix: str, failures: int) -> None:
        super().__init__(redis, prefix)
        self.failures = {"read": failures, "apply": failures}

    async def have_first_purchase(self, ids):  # type: ignore[override]
        ids = list(ids)
        if self.failures["read"]:
            self.failures["read"] -= 1
            raise ConnectionError("Redis is down (test)")
        return await super().have_first_purchase(ids)

    async def apply(self, ops):  # type: ignore[override]
        if self.failures["apply"]:
            self.failures["apply"] -= 1
            raise ConnectionError("Redis is down (test)")
        return await super().apply(ops)


async def test_retries_until_redis_answers(
    client: aioredis.Redis, unique_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(client, unique_id, failures=3)
    proc = BatchProcessor(store, Scorer(FakeBundle()), backoff=Backoff(base=0.001))
    with caplog.at_level(logging.WARNING, logger="stream.retry"):
        out = await proc.process(raws(invoice_json("1", "a")))
    assert out.counts["first"] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("event=redis_unavailable" in m for m in messages) == 6
    assert any("event=redis_recovered" in m for m in messages)


async def test_waits_while_redis_is_unreachable(
    client: aioredis.Redis, unique_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    store = CustomerStore(dead, unique_id)
    proc = BatchProcessor(store, Scorer(FakeBundle()), backoff=Backoff(base=0.01, cap=0.05))
    with caplog.at_level(logging.WARNING, logger="stream.retry"):
        task = asyncio.create_task(proc.process(raws(invoice_json("1", "a"))))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while sum("redis_unavailable" in r.getMessage() for r in caplog.records) < 3:
            assert loop.time() < deadline, "no retry log lines"
            assert not task.done()
            await asyncio.sleep(0.01)
        store.redis = client  # Redis is back
        out = await asyncio.wait_for(task, 10)
    assert out.counts["first"] == 1
    assert (await store.customer("a"))["fp_invoice"] == "1"
    await dead.aclose()


async def test_a_flushed_script_is_loaded_again_on_the_same_connections(
        client: aioredis.Redis, unique_id: str) -> None:
    """NOSCRIPT replies (Redis restarted or flushed) come back for a whole batch: every reply
    is read before the error is raised, so the pooled connection stays in step."""
    proc = BatchProcessor(CustomerStore(client, unique_id), Scorer(FakeBundle()))
    await proc.process(raws(invoice_json("1", "a")))
    await client.script_flush()
    out = await proc.process(raws(invoice_json("2", "b"), invoice_json("3", "c"),
                                  invoice_json("1", "a")))
    assert out.counts["first"] == 2 and out.counts["dup_first"] == 1
    known = await proc.store.have_first_purchase(["a", "b", "c", "zz"])
    assert known == {"a": True, "b": True, "c": True, "zz": False}


class ReadCountingStore(CustomerStore):
    """Records the customers each first-purchase read asks about."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        super().__init__(redis, prefix)
        self.reads: list[list[str]] = []

    async def have_first_purchase(self, ids):  # type: ignore[override]
        ids = list(ids)
        self.reads.append(sorted(set(ids)))
        return await super().have_first_purchase(ids)


async def test_a_customer_seen_with_a_first_purchase_is_not_read_again(
        client: aioredis.Redis, unique_id: str) -> None:
    """Most invoices are a known customer's: once a read showed a stored first purchase, or
    the worker stored one, the customer's later purchases need no read, and are not scored."""
    bundle = FakeBundle()
    store = ReadCountingStore(client, unique_id)
    proc = BatchProcessor(store, Scorer(bundle))
    first = await proc.process(raws(invoice_json("1", "a"), invoice_json("2", "b")))
    assert first.counts["first"] == 2 and store.reads == [["a", "b"]]
    later = await proc.process(raws(invoice_json("3", "a", "2010-02-01"),
                                    invoice_json("4", "c"), invoice_json("1", "a")))
    assert store.reads[1] == ["c"]  # a: neither its repeat nor its re-delivered first
    assert later.counts["applied"] == 1 and later.counts["first"] == 1
    assert later.counts["dup_first"] == 1 and [cid for cid, _ in later.scores] == ["c", "a"]
    assert bundle.calls == 2  # b and a once, then c
    # another worker (or a restart) knows nothing yet: it reads, and finds the stored ones
    other = BatchProcessor(ReadCountingStore(client, unique_id), Scorer(bundle))
    again = await other.process(raws(invoice_json("5", "a", "2010-03-01")))
    assert other.store.reads == [["a"]] and again.counts["applied"] == 1 and not again.scores


class SlowApplyStore(CustomerStore):
    """Applies a batch only once `go` is set: Redis still busy with it."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        super().__init__(redis, prefix)
        self.go = asyncio.Event()

    async def apply(self, ops):  # type: ignore[override]
        await self.go.wait()
        return await super().apply(ops)


async def test_the_batch_being_stored_counts_as_stored_for_the_next_one(
        client: aioredis.Redis, unique_id: str) -> None:
    """The loop prepares batch N+1 while Redis applies batch N: a customer back in N+1 after
    their first purchase in N is not read (Redis may not have it yet) nor scored again."""
    bundle = FakeBundle()
    store = SlowApplyStore(client, unique_id)
    proc = BatchProcessor(store, Scorer(bundle))
    batch_n = await proc.prepare(raws(invoice_json("1", "a")))
    storing = asyncio.create_task(proc.store_batch(batch_n))
    await asyncio.sleep(0)  # the store has started: its script calls are on their way
    batch_n1 = await proc.prepare(raws(invoice_json("2", "a", "2010-01-05"),
                                       invoice_json("3", "b")))
    assert not storing.done() and bundle.calls == 2  # a in N, b in N+1: once each
    assert [op.customer_id for op in batch_n1.ops if op.score_json] == ["b"]
    store.go.set()
    assert (await storing).counts["first"] == 1
    out = await proc.store_batch(batch_n1)
    assert out.counts["applied"] == 1 and out.counts["first"] == 1
    assert (await store.customer("a"))["fp_invoice"] == "1"


async def test_a_first_purchase_refused_by_the_script_is_not_remembered(
        client: aioredis.Redis, unique_id: str) -> None:
    """A customer without a first purchase whose spend is near the 64-bit limit: the scored first
    purchase overflows and is dead-lettered, so the next purchase is read and scored."""
    store = ReadCountingStore(client, unique_id)
    proc = BatchProcessor(store, Scorer(FakeBundle()))
    await client.hset(store.keys("a")[0], "spend_micros", 2**63 - 5)
    refused = await proc.process(raws(invoice_json("1", "a")))
    assert refused.counts["overflow"] == 1 and not refused.scores
    await client.hset(store.keys("a")[0], "spend_micros", 0)
    out = await proc.process(raws(invoice_json("2", "a", "2010-02-01")))
    assert store.reads == [["a"], ["a"]] and out.counts["first"] == 1


async def test_customers_are_read_again_when_redis_may_have_lost_state(
        client: aioredis.Redis, unique_id: str) -> None:
    """A dropped connection or an empty script cache (Redis restarted) bumps the store's
    epoch: what the worker remembered is dropped, and a customer whose state is gone is a
    new customer again."""
    store = ReadCountingStore(client, unique_id)
    proc = BatchProcessor(store, Scorer(FakeBundle()))
    await proc.process(raws(invoice_json("1", "a")))
    await client.delete(*store.keys("a"))
    await client.script_flush()  # as after a restart without persistence
    await proc.process(raws(invoice_json("2", "b")))  # NOSCRIPT, loaded again
    assert store.epoch == 1
    out = await proc.process(raws(invoice_json("3", "a", "2010-02-01")))
    assert store.reads[-1] == ["a"] and out.counts["first"] == 1
    assert (await store.customer("a"))["fp_invoice"] == "3"


async def test_a_failed_call_bumps_the_store_epoch(
        client: aioredis.Redis, unique_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CustomerStore(client, unique_id)
    await store.have_first_purchase(["a"])
    assert store.epoch == 0

    async def dropped(*args: object) -> None:
        raise ConnectionError("connection lost mid-reply (test)")

    with monkeypatch.context() as m:
        m.setattr(store_module, "_read_replies", dropped)
        with pytest.raises(ConnectionError):
            await store.have_first_purchase(["a"])
    assert store.epoch == 1
    assert await store.have_first_purchase(["a"]) == {"a": False}  # the pool goes on


async def test_prepare_gives_the_loop_a_turn_every_hundred_invoices(
    client: aioredis.Redis, unique_id: str, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """The previous batch's store (its pipeline out, its replies in) and Kafka's next fetch
    progress only when the loop runs: a batch of 350 invoices must not hold it throughout."""
    native = reader == "native_reader"
    proc = BatchProcessor(CustomerStore(client, unique_id), Scorer(FakeBundle()))
    calls = {"read_op": 0} if native else {"validate": 0, "invoice_op": 0}
    for name in calls:
        owner = proc if name == "read_op" else processor_module
        original = getattr(owner, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    batch = raws(*(invoice_json(str(i), f"c{i % 70}") for i in range(350)))
    at_turns: list[dict[str, int]] = []
    preparing = True

    async def other_task() -> None:
        while preparing:
            at_turns.append(dict(calls))
            await asyncio.sleep(0)

    other = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    prepared = await proc.prepare(batch)
    preparing = False
    await other
    assert len(prepared.ops) == 350 and calls == dict.fromkeys(calls, 350)
    at_turns.append(dict(calls))
    for name in calls:
        seen = [turn[name] for turn in at_turns]
        assert max(b - a for a, b in pairwise(seen)) <= TURN_EVERY == 100, (name, seen)


async def test_a_record_the_reader_accepts_and_the_contract_refuses_is_dead_lettered(
    client: aioredis.Redis, unique_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Should the native reader ever accept what the contract refuses (a bug), the contract
    wins: the record is dead-lettered and stores nothing, and the customer's next purchase
    in the batch is their first."""
    proc = BatchProcessor(CustomerStore(client, unique_id), Scorer(FakeBundle()))
    bad = invoice_json("1", "a", extra_field=1)  # refused by the contract: unknown field
    good = invoice_json("2", "a", "2010-01-05")
    proc.read_op = lambda raw: InvoiceOp("a", "1", 1262595600.0, "P", 1.0, 1, {0: 1.0}) \
        if raw == bad else None
    with caplog.at_level(logging.ERROR):
        out = await proc.process(raws(bad, good))
    assert out.counts["dead_letter:invalid"] == 1 and out.counts["first"] == 1
    assert [CustomerScored.model_validate_json(v).invoice_id for _, v in out.scores] == ["2"]
    assert (await proc.store.customer("a"))["invoices"] == ["2"]
    assert "event=fast_op_disagrees" in caplog.text
