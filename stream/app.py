"""The Faust app: the scoring loop as a task, the web server, the leader-only learner.

The invoices are consumed by `stream.consumer.ScoringLoop` (a plain aiokafka loop, see there
why), run as a task of this app; its consumer group is `BASKETCAST_APP_ID`, so several worker
processes share the partitions. Faust's own consumer group (`<app id>-ops`) reads no invoices:
it elects the leader that runs the online learner (`stream.online`) and serves the web pages.

>>> from stream.settings import Settings
>>> app = create_app(Settings.from_env({}), processor=None, web_enabled=False)
>>> app.conf.id, app.basketcast_loop.settings.topic_invoices
('basketcast-ops', 'invoices')
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import faust

from stream.consumer import KafkaPublisher, ScoringLoop, kafka_producer
from stream.learner import install_learner
from stream.processor import BatchProcessor, Outcome, RawEvent
from stream.retry import retry_until_done
from stream.settings import Settings

log = logging.getLogger(__name__)

Publisher = Callable[[Outcome], Awaitable[None]]


def scratch_datadir(app_id: str) -> Path:
    """Faust's data directory: a fresh temporary one, removed at exit.

    The app keeps nothing on disk (its tables are in memory, the customers' state is in
    Redis), and Faust's default, `<app id>-ops-data` in the working directory, left one directory
    per run in whatever directory the worker or the demo was started from.

    >>> path = scratch_datadir("doc")
    >>> path.is_dir(), path.name.startswith("doc-faust-")
    (True, True)
    """
    path = Path(tempfile.mkdtemp(prefix=f"{app_id}-faust-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def create_app(
    settings: Settings,
    processor: BatchProcessor | None,
    *,
    publish: Publisher | None = None,
    web_enabled: bool = True,
    stats_interval: float = 30.0,
) -> faust.App:
    """Build the worker's app; `publish` replaces the Kafka sends (tests)."""
    app = faust.App(
        f"{settings.app_id}-ops",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        web_enabled=web_enabled,
        web_port=settings.web_port,
        producer_linger_ms=1,
        broker_session_timeout=10.0,  # a killed leader's learner moves on within seconds
        datadir=scratch_datadir(settings.app_id),
    )
    totals: Counter[str] = Counter()

    async def not_started(outcome: Outcome) -> None:
        raise RuntimeError("the scoring loop publishes only once the worker has started")

    loop = ScoringLoop(settings, processor, publish or not_started)  # type: ignore[arg-type]
    if processor is not None:  # first of all: a prefix written in another format stops here
        loop.before_start.append(lambda: retry_until_done(
            processor.store.check_format, "check_state_format", processor.backoff))

    def count(outcome: Outcome, raws: list[RawEvent]) -> None:
        totals.update(outcome.counts)
        totals["batches"] += 1

    loop.hooks.append(count)

    @app.task
    async def score_invoices() -> None:
        assert processor is not None, "create_app(processor=None) is for inspection only"
        producer = None
        if publish is None:
            producer = kafka_producer(settings)
            await producer.start()
            loop.publish = KafkaPublisher(producer, settings.topic_scores,
                                          settings.topic_dlq).publish
        try:
            await loop.run()
        finally:
            if producer is not None:
                await producer.stop()

    @app.task
    async def announce() -> None:
        scorer = getattr(processor, "scorer", None)
        log.info(
            "event=worker_started app_id=%s invoices=%s scores=%s dlq=%s partitions=%d "
            "model_version=%s batch_max=%d batch_within_ms=%d", settings.app_id,
            settings.topic_invoices, settings.topic_scores, settings.topic_dlq,
            settings.partitions, getattr(scorer, "model_version", "?"), settings.batch_max,
            settings.batch_within_ms,
        )

    @app.timer(interval=stats_interval)
    async def log_stats() -> None:
        if totals:
            log.info("event=stats %s", " ".join(f"{k}={v}" for k, v in sorted(totals.items())))

    app.basketcast_loop = loop  # type: ignore[attr-defined]
    app.basketcast_totals = totals  # type: ignore[attr-defined]
    app.basketcast_batch_hooks = loop.hooks  # type: ignore[attr-defined]
    install_learner(app, settings, processor)
    return app
