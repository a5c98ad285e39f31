"""The hot path: invoice records from Kafka -> `BatchProcessor` -> scores and dead letters.

A plain aiokafka consumer and producer, run as a task of the Faust worker (which keeps the web
server, the leader-only learner and the drift topic). A Faust agent handled the same batches
with a `Message` and an `Event` object, a per-event ack and a trip through its conductor for
every record: that machinery cost as much CPU as validating, storing and scoring the invoice,
and held throughput to ~2,500 invoices/s. Here one `getmany` is one micro-batch.

Delivery: at least once, made effectively once by the idempotent Lua script and the
deterministic `event_id`. A batch's offsets are committed only after its Redis step succeeded
and the broker acknowledged every output record; a commit is deferred to at most
`COMMIT_INTERVAL_S`, and is forced when partitions are revoked and on stop. A batch still in
flight when its partition is revoked is finished (its outputs are duplicates at worst) but its
offsets are dropped, even if the partition comes back: its owner reads on from the committed
offset, so a commit never moves backwards.

Pipelining: batch N+1 is validated and scored while Redis applies batch N, and Redis applies
N+1 while the broker acknowledges N's outputs. Outputs are published, and offsets become
committable, in batch order; at most one batch's outputs are in flight behind the batch being
stored. (Waiting for the acknowledgements before the next Redis step cost ~20 ms a batch of
~2,900 invoices, most of the loop's `store_wait`.)

>>> records = [RawEvent(None, None, "invoices", p, o) for p, o in [(0, 7), (0, 8), (1, 3)]]
>>> offsets = next_offsets(records)
>>> sorted((tp.partition, o) for tp, o in offsets.items())
[(0, 9), (1, 4)]
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from stream.processor import BatchProcessor, Outcome, Prepared, RawEvent
from stream.retry import Backoff, retry_until_done
from stream.settings import Settings

log = logging.getLogger(__name__)

#: What a failed commit may raise while the broker is away or the group rebalances.
KAFKA_TRANSIENT: tuple[type[BaseException], ...] = (KafkaError, ConnectionError, OSError,
                                                    asyncio.TimeoutError)
#: The largest output record: a dead letter carries an event of up to `MAX_EVENT_BYTES` in
#: base64 (4/3 of it) plus its JSON; Kafka's default of 1 MB would refuse it.
MAX_OUTPUT_BYTES = 3 * 1024 * 1024


class PermanentSendError(RuntimeError):
    """The broker refused an output for good (retrying cannot help): the worker stops."""


BatchHook = Callable[[Outcome, list[RawEvent]], None]
#: Where the scoring loop's time goes: waiting for records (`fetch`), validating and scoring a
#: batch (`prepare`), waiting for the previous batch's Redis step and outputs (`store_wait`:
#: Redis or the broker is slower than the scoring), building and sending a batch's scripts
#: (`store_send`), committing. The rest of a store (reading replies, publishing) runs in the
#: loop's turns, so its CPU falls in the phase it interrupted, mostly `prepare`.
LOOP_PHASES = ("fetch", "prepare", "store_wait", "store_send", "commit")
#: Offsets are committed at most this often (and on rebalance and stop): one commit per batch
#: would be one broker write per few records at low rates.
COMMIT_INTERVAL_S = 1.0


def next_offsets(records: Iterable[RawEvent]) -> dict[TopicPartition, int]:
    """The offset to commit per partition after `records`: the highest one + 1.

    One `TopicPartition` per partition, not per record (a named tuple's constructor is a
    Python call: ~2 % of the worker's time when it ran for every record)."""
    last: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        if r.offset > last.get(key, -1):
            last[key] = r.offset
    return {TopicPartition(topic, partition): offset + 1
            for (topic, partition), offset in last.items()}


def raw_events(records: Sequence[Any]) -> list[RawEvent]:
    """aiokafka `ConsumerRecord`s (timestamps in ms) as the processor's `RawEvent`s."""
    return [
        RawEvent(r.value, r.key, r.topic, r.partition, r.offset,
                 r.timestamp / 1000 if r.timestamp is not None else None)
        for r in records
    ]


class KafkaPublisher:
    """Sends a batch's scores and dead letters; `publish` returns once the broker has them."""

    def __init__(self, producer: AIOKafkaProducer, scores_topic: str, dlq_topic: str,
                 backoff: Backoff | None = None) -> None:
        self.producer = producer
        self.scores_topic = scores_topic
        self.dlq_topic = dlq_topic
        self.backoff = backoff or Backoff()

    async def publish(self, outcome: Outcome) -> None:
        if outcome.scores or outcome.dead_letters:
            # A failed batch is sent again whole: consumers see a duplicate with the same
            # event_id, never a gap.
            await retry_until_done(lambda: self._send(outcome), "publish", self.backoff,
                                   service="kafka", transient=KAFKA_TRANSIENT)

    async def _send(self, outcome: Outcome) -> None:
        send = self.producer.send
        try:
            futures = [await send(self.scores_topic, value.encode(), key=key.encode())
                       for key, value in outcome.scores]
            futures += [await send(self.dlq_topic, value.encode(), key=raw_key)
                        for raw_key, value in outcome.dead_letters]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            if getattr(exc, "retriable", False) or isinstance(
                    exc, (KafkaConnectionError, KafkaTimeoutError)):
                raise
            # e.g. a record over the topic's max.message.bytes: stop loudly, commit nothing
            raise PermanentSendError(f"{type(exc).__name__}: {exc}") from exc


class ScoringLoop(ConsumerRebalanceListener):
    """Consume micro-batches, process, publish, commit; `run` until cancelled.

    `handle` is one batch without Kafka (the branch tests drive it with hand-made records).
    """

    def __init__(
        self,
        settings: Settings,
        processor: BatchProcessor,
        publish: Callable[[Outcome], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.publish = publish
        self.hooks: list[BatchHook] = []
        #: awaited once before the first record is read (e.g. load the stored online model)
        self.before_start: list[Callable[[], Awaitable[None]]] = []
        self.consumer: AIOKafkaConsumer | None = None
        self._uncommitted: dict[TopicPartition, int] = {}
        #: the offsets committed last, per partition (the web server's consumer lag)
        self.committed: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        #: seconds of the loop spent per phase (`LOOP_PHASES`), for /metrics and the benchmark
        self.seconds: dict[str, float] = dict.fromkeys(LOOP_PHASES, 0.0)
        #: the last stored batch's publish (outputs, hooks, then its offsets), in batch order
        self._publishing: asyncio.Task[None] | None = None
        #: per partition, how many times it was revoked: a batch read before a revoke must not
        #: make its offsets committable after it (see `_publish`)
        self._revocations: dict[TopicPartition, int] = {}

    async def handle(self, raws: list[RawEvent]) -> Outcome:
        """Process and publish one batch; its offsets may be committed when this returns."""
        outcome = await self.processor.process(raws)
        await self._published(outcome, raws)
        return outcome

    def make_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=s.app_id,
            client_id=f"{s.app_id}-scorer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=max(1, s.batch_within_ms),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=10_000,  # a killed worker's partitions move on within seconds
            heartbeat_interval_ms=3_000,
            max_poll_interval_ms=600_000,  # a long Redis outage must not cost the assignment
        )

    async def run(self) -> None:
        """Batch N+1 is validated and scored while Redis applies batch N, and Redis applies
        N+1 while N's outputs are acknowledged; the applies, the publishes and the offsets stay
        in batch order. `seconds` adds up where the time went."""
        for prepare in self.before_start:
            await prepare()
        consumer = self.consumer = self.make_consumer()
        await consumer.start()
        consumer.subscribe([self.settings.topic_invoices], listener=self)
        s = self.settings
        log.info("event=scoring_loop_started topic=%s group=%s batch_max=%d within_ms=%d",
                 s.topic_invoices, s.app_id, s.batch_max, s.batch_within_ms)
        storing: asyncio.Task[None] | None = None
        seconds, clock = self.seconds, time.perf_counter
        try:
            while True:
                t0 = clock()
                batch = await consumer.getmany(timeout_ms=s.batch_within_ms,
                                               max_records=s.batch_max)
                t1 = clock()
                seconds["fetch"] += t1 - t0
                records = [r for recs in batch.values() for r in recs]
                if records:
                    revocations = {tp: self._revocations.get(tp, 0) for tp in batch}
                    raws = raw_events(records)
                    prepared = await self.processor.prepare(raws)
                    t2 = clock()
                    seconds["prepare"] += t2 - t1
                    if storing is not None:
                        await storing
                        t3 = clock()
                        seconds["store_wait"] += t3 - t2
                        if prepared.failures:
                            # It read first-purchase flags before the previous batch was
                            # stored: a failed "first purchase" may not be one; read again.
                            prepared = await self.processor.prepare(raws)
                            seconds["prepare"] += clock() - t3
                    storing = asyncio.create_task(self._store(prepared, raws, revocations))
                    t5 = clock()
                    await asyncio.sleep(0)  # the store sends its pipeline before the next batch
                    seconds["store_send"] += clock() - t5
                elif storing is not None and storing.done():
                    await storing
                    storing = None
                if self._publishing is not None and self._publishing.done():
                    self._publishing.result()  # a failed publish stops the loop
                if self._uncommitted and (
                        time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S):
                    t4 = clock()
                    await self.commit()
                    seconds["commit"] += clock() - t4
        finally:
            try:
                # not committed: read again by the partitions' next owner
                tasks = [t for t in (storing, self._publishing) if t is not None]
                self._publishing = None
                for task in tasks:
                    task.cancel()
                failed = [r for r in await asyncio.gather(*tasks, return_exceptions=True)
                          if isinstance(r, BaseException)
                          and not isinstance(r, asyncio.CancelledError)]
                for exc in failed:
                    log.error("event=batch_failed error=%r", exc)
                if not failed:
                    await self.commit()
            except Exception:  # noqa: BLE001 - the consumer must leave the group regardless
                log.exception("event=scoring_loop_failed")
            finally:
                await consumer.stop()
                log.info("event=scoring_loop_stopped")

    async def _store(self, prepared: Prepared, raws: list[RawEvent],
                     revocations: dict[TopicPartition, int]) -> None:
        """The batch's Redis step; then its publish is queued behind the previous batch's
        (which it waits for, so one batch's outputs at most are in flight behind this one; a
        failed publish fails this step too, and with it the loop)."""
        outcome = await self.processor.store_batch(prepared)
        previous = self._publishing
        if previous is not None:
            await previous
        self._publishing = asyncio.create_task(self._publish(outcome, raws, revocations))

    async def _publish(self, outcome: Outcome, raws: list[RawEvent],
                       revocations: dict[TopicPartition, int]) -> None:
        """Publish, then make the batch's offsets committable; `revocations`: each partition's
        revocation count when the batch was read."""
        await self._published(outcome, raws)
        uncommitted = self._uncommitted
        for tp, offset in next_offsets(raws).items():
            if self._revocations.get(tp, 0) != revocations.get(tp, 0):
                # revoked since it was read: whoever owns it now reads it again from the
                # committed offset, which may be below this one or already beyond it
                continue
            # never backwards (a guard: one assignment's batches come in offset order)
            if offset > uncommitted.get(tp, -1):
                uncommitted[tp] = offset

    async def _published(self, outcome: Outcome, raws: list[RawEvent]) -> None:
        await self.publish(outcome)
        for hook in self.hooks:
            hook(outcome, raws)

    async def commit(self) -> None:
        """Commit what was processed; a failure leaves it for the next try (never raises)."""
        if not self._uncommitted or self.consumer is None:
            return
        offsets, self._uncommitted = self._uncommitted, {}
        assigned = self.consumer.assignment()
        owned = {tp: o for tp, o in offsets.items() if tp in assigned}
        self._last_commit = time.monotonic()
        if not owned:
            return
        try:
            await self.consumer.commit(owned)
            self.committed.update(owned)
        except KAFKA_TRANSIENT as exc:
            # Revoked meanwhile, or the broker is away: the new owner re-reads these records,
            # which the idempotent Redis step and deterministic event ids make harmless.
            log.warning("event=commit_failed partitions=%d error=%r", len(owned), exc)
            for tp, o in owned.items():
                self._uncommitted.setdefault(tp, o)

    def lag(self) -> dict[int, int]:
        """Records not committed yet, per partition assigned to this worker."""
        consumer = self.consumer
        if consumer is None:
            return {}
        return {
            tp.partition: max(0, (consumer.highwater(tp) or 0) - self.committed.get(tp, 0))
            for tp in sorted(consumer.assignment())
        }

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.commit()
        for tp in revoked:
            self.committed.pop(tp, None)
            self._revocations[tp] = self._revocations.get(tp, 0) + 1
        log.info("event=partitions_revoked partitions=%s",
                 sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("event=partitions_assigned partitions=%s",
                 sorted(tp.partition for tp in assigned))


def kafka_producer(settings: Settings) -> AIOKafkaProducer:
    """The outputs' producer: acks from all replicas, a short linger to batch a burst."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-scorer",
        acks="all",
        linger_ms=1,
        max_batch_size=256 * 1024,
        max_request_size=MAX_OUTPUT_BYTES,
    )
