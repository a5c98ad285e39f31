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
from schemas.scored import CustomerScored
from stream.processor import TURN_EVERY, BatchProcessor, RawEvent
from stream.retry import Backoff
from stream.scoring import Scorer
from stream.store import CustomerStore

pytestmark = pytest.mark.integration


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


async def test_prepare_gives_the_loop_a_turn_every_hundred_invoices(
    client: aioredis.Redis, unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous batch's store (its pipeline out, its replies in) and Kafka's next fetch
    progress only when the loop runs: a batch of 350 invoices must not hold it throughout."""
    calls = {"validate": 0, "invoice_op": 0}
    for name in calls:
        original = getattr(processor_module, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(processor_module, name, counted)
    proc = BatchProcessor(CustomerStore(client, unique_id), Scorer(FakeBundle()))
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
    assert len(prepared.ops) == 350 and calls == {"validate": 350, "invoice_op": 350}
    at_turns.append(dict(calls))
    for name in calls:
        seen = [turn[name] for turn in at_turns]
        assert max(b - a for a, b in pairwise(seen)) <= TURN_EVERY == 100, (name, seen)
