"""The Faust app: the invoice topic, the output topics and the scoring agent.

The agent is a short loop: take a micro-batch of raw records, let `BatchProcessor` do the work,
publish, and only then acknowledge the records (`noack_take` + `ack`: `take` would acknowledge
a batch even when processing raised). Faust commits acknowledged offsets after flushing the
producer, so an offset is committed only after its Redis step succeeded and its outputs were
handed to the producer: at-least-once delivery, made effectively-once by the idempotent
Lua script and the deterministic `event_id`.

>>> from stream.settings import Settings
>>> app = create_app(Settings.from_env({}), processor=None, web_enabled=False)
>>> sorted(app.basketcast_topics)
['customer-scores', 'invoices', 'invoices-dlq']
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable

import faust

from stream.learner import install_learner
from stream.processor import BatchProcessor, Outcome, RawEvent
from stream.settings import Settings

log = logging.getLogger(__name__)

#: Micro-batch: at most this many records, or what arrived within this many seconds. A batch
#: pays one model call (~50 ms fixed on the shipped bundle), so a backlog is worked off in big
#: batches, while at a few hundred invoices/s a batch closes after BATCH_WITHIN_S.
BATCH_MAX = 2000
BATCH_WITHIN_S = 0.02

Publisher = Callable[[Outcome], Awaitable[None]]


def create_app(
    settings: Settings,
    processor: BatchProcessor | None,
    *,
    publish: Publisher | None = None,
    web_enabled: bool = True,
    batch_max: int = BATCH_MAX,
    batch_within: float = BATCH_WITHIN_S,
    stats_interval: float = 30.0,
) -> faust.App:
    """Build the worker's app; `publish` replaces the Kafka sends (agent tests)."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=web_enabled,
        web_port=settings.web_port,
        producer_linger_ms=1,
        broker_commit_interval=1.0,
        broker_session_timeout=10.0,  # a killed worker's partitions move on within seconds
    )
    topic = {
        name: app.topic(name, key_serializer="raw", value_serializer="raw",
                        partitions=settings.partitions)
        for name in (settings.topic_invoices, settings.topic_scores, settings.topic_dlq)
    }
    scores, dlq = topic[settings.topic_scores], topic[settings.topic_dlq]
    totals: Counter[str] = Counter()
    #: Called with (outcome, raws) after each published batch (metrics, see stream.online).
    batch_hooks: list[Callable[[Outcome, list[RawEvent]], None]] = []

    async def send(outcome: Outcome) -> None:
        for key, value in outcome.scores:
            await scores.send(key=key.encode(), value=value.encode())
        for raw_key, value in outcome.dead_letters:
            await dlq.send(key=raw_key, value=value.encode())

    publish = publish or send

    @app.agent(topic[settings.topic_invoices], name="score-invoices")
    async def score_invoices(stream: faust.StreamT):  # noqa: ANN202 - an async generator
        assert processor is not None, "create_app(processor=None) is for inspection only"
        async for events in stream.noack_take(batch_max, within=batch_within):
            raws = [
                RawEvent(e.value, e.key, e.message.topic, e.message.partition,
                         e.message.offset, e.message.timestamp)
                for e in events
            ]
            outcome = await processor.process(raws)
            await publish(outcome)
            for e in events:
                await stream.ack(e)
            totals.update(outcome.counts)
            totals["batches"] += 1
            for hook in batch_hooks:
                hook(outcome, raws)
            yield outcome

    @app.task
    async def announce() -> None:
        scorer = getattr(processor, "scorer", None)
        log.info(
            "event=worker_started app_id=%s invoices=%s scores=%s dlq=%s partitions=%d "
            "model_version=%s batch_max=%d batch_within_s=%.3f", settings.app_id,
            settings.topic_invoices, settings.topic_scores, settings.topic_dlq,
            settings.partitions, getattr(scorer, "model_version", "?"), batch_max, batch_within,
        )

    @app.timer(interval=stats_interval)
    async def log_stats() -> None:
        if totals:
            log.info("event=stats %s", " ".join(f"{k}={v}" for k, v in sorted(totals.items())))

    app.basketcast_topics = topic  # type: ignore[attr-defined]
    app.basketcast_totals = totals  # type: ignore[attr-defined]
    app.basketcast_batch_hooks = batch_hooks  # type: ignore[attr-defined]
    install_learner(app, settings, processor)
    return app
