"""The scoring loop's branches, one batch at a time through `ScoringLoop.handle`, on a real
Redis; no broker: `publish` is replaced by a list (the loop on Kafka: test_worker_e2e, tests/e2e).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition
from stream_fakes import FakeBundle, invoice_json

from schemas.dead_letter import DeadLetter
from schemas.scored import CustomerScored, score_event_id
from stream.consumer import ScoringLoop, next_offsets
from stream.processor import BatchProcessor, Outcome, RawEvent
from stream.scoring import Scorer
from stream.settings import Settings
from stream.store import CustomerStore

pytestmark = pytest.mark.integration


@dataclass
class Harness:
    loop: ScoringLoop
    store: CustomerStore
    bundle: FakeBundle
    published: list[Outcome] = field(default_factory=list)
    offset: int = 0

    async def put(self, value: bytes, key: bytes | None = b"7") -> None:
        """One record, as the loop's next batch (offsets count from 0, partition 0)."""
        await self.loop.handle([RawEvent(value, key, "invoices", 0, self.offset)])
        self.offset += 1

    @property
    def scores(self) -> list[CustomerScored]:
        return [CustomerScored.model_validate_json(v) for o in self.published for _, v in o.scores]

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return [DeadLetter.model_validate_json(v) for o in self.published
                for _, v in o.dead_letters]

    def count(self, name: str) -> int:
        return sum(o.counts[name] for o in self.published)


@pytest.fixture
async def harness(redis_url: str, unique_id: str) -> AsyncIterator[Harness]:
    client = aioredis.from_url(redis_url)
    store = CustomerStore(client, unique_id)
    bundle = FakeBundle()
    settings = Settings.from_env({"BASKETCAST_APP_ID": unique_id})
    published: list[Outcome] = []

    async def publish(outcome: Outcome) -> None:
        published.append(outcome)

    loop = ScoringLoop(settings, BatchProcessor(store, Scorer(bundle)), publish)
    yield Harness(loop, store, bundle, published)
    keys = [k async for k in client.scan_iter(match=f"{unique_id}:*", count=10_000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def test_offsets_to_commit_are_one_past_the_last_record_per_partition() -> None:
    records = [RawEvent(b"", None, "t", p, o) for p, o in [(0, 5), (1, 2), (0, 6), (0, 4)]]
    assert next_offsets(records) == {TopicPartition("t", 0): 7, TopicPartition("t", 1): 3}


async def test_hooks_see_every_published_batch(harness: Harness) -> None:
    seen: list[int] = []
    harness.loop.hooks.append(lambda outcome, raws: seen.append(len(raws)))
    await harness.put(invoice_json("489434", "7"))
    await harness.put(b"{nope")
    assert seen == [1, 1] and len(harness.published) == 2


async def test_first_purchase_is_scored_and_stored(harness: Harness) -> None:
    await harness.put(invoice_json("489434", "7"))
    [score] = harness.scores
    assert score.customer_id == "7" and score.invoice_id == "489434"
    assert score.event_id == score_event_id("fake-1", "7", "489434")
    total = 2 * 6.95 + 12.75
    assert score.p_repeat == total / (total + 100.0)
    state = await harness.store.customer("7")
    assert state is not None
    assert state["fp_invoice"] == "489434" and json.loads(state["features"])["total"] == total
    assert CustomerScored.model_validate_json(state["score"]) == score
    assert float(state["spend"]) == pytest.approx(total) and state["orders"] == "1"
    due = await harness.store.redis.zscore(harness.store.maturation_key, "7")
    assert due == pytest.approx(float(state["fp_at"]) + 365 * 86400)


async def test_repeat_purchase_is_counted_not_scored(harness: Harness) -> None:
    await harness.put(invoice_json("489434", "7"))
    await harness.put(invoice_json("489500", "7", when="2010-02-01T10:00:00"))
    assert len(harness.scores) == 1 and harness.count("applied") == 1
    state = await harness.store.customer("7")
    assert state["orders"] == "2" and state["h_orders"] == "1"
    assert state["invoices"] == ["489434", "489500"]


async def test_duplicate_reemits_same_score_and_counts_nothing(harness: Harness) -> None:
    await harness.put(invoice_json("489434", "7"))
    await harness.put(invoice_json("489500", "7", when="2010-02-01T10:00:00"))
    before = await harness.store.customer("7")
    await harness.put(invoice_json("489434", "7"))  # re-delivered first purchase
    await harness.put(invoice_json("489500", "7", when="2010-02-01T10:00:00"))
    first, again = harness.scores
    assert first == again  # same event_id, same numbers, same scored_at
    assert harness.count("dup_first") == 1 and harness.count("dup") == 1
    assert await harness.store.customer("7") == before


async def test_cancellation_is_never_a_first_purchase(harness: Harness) -> None:
    await harness.put(invoice_json("C489449", "8", lines=[("85048", -2, 6.95)]))
    assert harness.scores == [] and harness.count("cancel_unknown") == 1
    state = await harness.store.customer("8")
    assert state["cancellations"] == "1" and float(state["spend"]) == pytest.approx(-13.9)
    assert "fp_invoice" not in state
    await harness.put(invoice_json("489450", "8", when="2010-01-05T09:00:00"))
    [score] = harness.scores
    assert score.invoice_id == "489450"


async def test_cancellation_after_first_purchase_changes_net_figures(harness: Harness) -> None:
    await harness.put(invoice_json("489434", "7"))
    await harness.put(invoice_json("C489435", "7", when="2010-01-05T09:00:00",
                                   lines=[("85048", -1, 6.95)]))
    state = await harness.store.customer("7")
    assert float(state["spend"]) == pytest.approx(6.95 + 12.75)
    assert int(state["items"]) == 2 and state["cancellations"] == "1"
    assert len(harness.scores) == 1


async def test_an_invoice_beyond_the_states_money_range_is_dead_lettered(
        harness: Harness) -> None:
    """Money is kept in 64-bit micro-units: an invoice beyond +-1e9 is refused, not stored,
    and the next one goes on."""
    huge = [(f"2{i:04d}", 1_000_000, 1_000.0) for i in range(2)]  # 2e9
    await harness.put(invoice_json("900", "7", lines=huge))
    await harness.put(invoice_json("901", "7"))
    assert [d.reason for d in harness.dead_letters] == ["invalid"]
    assert "beyond +-1e+09" in harness.dead_letters[0].error
    state = await harness.store.customer("7")
    assert state is not None and state["invoices"] == ["901"]
    assert [s.invoice_id for s in harness.scores] == ["901"]


INT64_MAX = 2**63 - 1


@pytest.mark.parametrize("full", ["spend", "category", "horizon spend"])
async def test_an_invoice_that_would_overflow_the_state_is_dead_lettered_whole(
        harness: Harness, full: str) -> None:
    """A customer's 64-bit micro-units full (thousands of invoices at the per-invoice limit):
    the next invoice is dead-lettered and nothing of it is kept, even the adds the script made
    before the one Redis refused; the invoice after it is applied as usual."""
    await harness.put(invoice_json("900", "7", lines=[("85048", 1, 10.0)]))  # first purchase
    store = harness.store
    cust, _, cats = store.keys("7")
    category = str(harness.bundle.category_of("85048", None))
    if full == "spend":
        await store.redis.hset(cust, "spend_micros", INT64_MAX - 5)
    elif full == "category":
        await store.redis.hset(cats, category, INT64_MAX - 5)
    else:
        await store.redis.hset(cust, "h_spend_micros", INT64_MAX - 5)
    before = (await store.redis.hgetall(cust), await store.redis.hgetall(cats))
    await harness.put(invoice_json("901", "7", when="2010-02-01T10:00:00",
                                   lines=[("85048", 1, 10.0)]))
    assert [d.reason for d in harness.dead_letters] == ["invalid"]
    assert "64-bit" in harness.dead_letters[0].error
    assert harness.dead_letters[0].source_offset == 1  # the record itself, to replay
    assert json.loads(harness.dead_letters[0].raw_value())["invoice_id"] == "901"
    assert (await store.redis.hgetall(cust), await store.redis.hgetall(cats)) == before
    state = await store.customer("7")
    assert state is not None and state["invoices"] == ["900"]
    await harness.put(invoice_json("C902", "7", when="2010-02-02T10:00:00",
                                   lines=[("85048", -1, 10.0)]))
    state = await store.customer("7")
    assert state is not None and sorted(state["invoices"]) == ["900", "C902"]
    assert len(harness.dead_letters) == 1 and harness.count("overflow") == 1


async def test_guest_is_counted_and_skipped(harness: Harness) -> None:
    await harness.put(invoice_json("489436", None), key=None)
    assert harness.count("guests") == 1 and harness.scores == [] and harness.dead_letters == []
    assert await harness.store.redis.exists(harness.store.watermark_key) == 0  # nothing applied


async def test_postage_only_invoice_is_not_a_first_purchase(harness: Harness) -> None:
    await harness.put(invoice_json("489437", "9", lines=[("POST", 1, 18.0)]))
    assert harness.scores == []
    assert (await harness.store.customer("9"))["others"] == "1"


@pytest.mark.parametrize("reason, raw", [
    ("not_utf8", b'{"invoice_id": "\xff"}'),
    ("not_json", b"{nope"),
    ("wrong_type", invoice_json("1", "7").replace(b'"quantity": 2', b'"quantity": "two"')),
    ("missing_field", b'{"invoice_id": "1", "lines": [{"stock_code": "A", "quantity": 1,'
                      b' "unit_price": 1.0}]}'),
    ("no_lines", invoice_json("1", "7", lines=[])),
    ("non_finite", invoice_json("1", "7").replace(b"6.95", b"NaN")),
    ("too_many_lines", invoice_json("1", "7", lines=[("A", 1, 1.0)] * 2001)),
])
async def test_dead_letters(harness: Harness, reason: str, raw: bytes) -> None:
    await harness.put(raw, key=b"7")
    await harness.put(invoice_json("489434", "7"))  # the worker goes on
    [dl] = harness.dead_letters
    assert dl.reason == reason
    assert base64.b64decode(dl.raw_value_b64) == raw
    assert dl.source_partition == 0 and dl.source_offset == 0
    assert len(harness.scores) == 1


async def test_unscorable_first_purchase_is_dead_lettered(harness: Harness) -> None:
    await harness.put(invoice_json("489434", "7", lines=[("BOOM", 1, 1.0)]))
    [dl] = harness.dead_letters
    assert dl.reason == "unscorable" and "BOOM" in dl.error
    assert await harness.store.customer("7") is None


class FlakyProducer:
    """`send` as aiokafka's: returns a future; the first `fail` sends' futures fail with `error`."""

    def __init__(self, error: Exception | None, fail: int) -> None:
        self.error, self.fail, self.sent = error, fail, []

    async def send(self, topic: str, value: bytes, key: bytes | None = None):
        import asyncio

        fut = asyncio.get_running_loop().create_future()
        if self.fail > 0 and self.error is not None:
            self.fail -= 1
            fut.set_exception(self.error)
        else:
            self.sent.append((topic, key, value))
            fut.set_result(None)
        return fut


def _outcome() -> Outcome:
    out = Outcome()
    out.scores.append(("7", '{"x": 1}'))
    out.dead_letters.append((b"7", '{"reason": "not_json"}'))
    return out


async def test_a_passing_broker_error_is_retried_and_the_batch_sent_again() -> None:
    from aiokafka.errors import KafkaTimeoutError

    from stream.consumer import KafkaPublisher
    from stream.retry import Backoff

    producer = FlakyProducer(KafkaTimeoutError(), fail=1)
    await KafkaPublisher(producer, "scores", "dlq", Backoff(base=0.001)).publish(_outcome())
    # the whole batch again: the dead letter that got through the first time is a duplicate
    assert [t for t, _, _ in producer.sent] == ["dlq", "scores", "dlq"]


async def test_a_permanent_broker_error_stops_instead_of_retrying_forever() -> None:
    from aiokafka.errors import MessageSizeTooLargeError

    from stream.consumer import KafkaPublisher, PermanentSendError
    from stream.retry import Backoff

    producer = FlakyProducer(MessageSizeTooLargeError(), fail=1)
    with pytest.raises(PermanentSendError, match="MessageSizeTooLarge"):
        await KafkaPublisher(producer, "scores", "dlq", Backoff(base=0.001)).publish(_outcome())

