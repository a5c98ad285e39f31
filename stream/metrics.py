"""The worker's Prometheus metrics (prometheus-client), served as text by `GET /metrics`.

One `CollectorRegistry` per app (not the process-global one), so tests that build several
apps in one process never collide.

>>> from stream.processor import Outcome, RawEvent
>>> m = WorkerMetrics()
>>> out = Outcome()
>>> out.counts.update({"events": 3, "first": 1, "guests": 1, "dup": 1,
...                    "dead_letters": 1, "dead_letter:not_json": 1})
>>> m.observe_batch(out, [RawEvent(b"{}", timestamp=None)], now=10.0)
>>> text = m.render().decode()
>>> 'basketcast_dead_letters_total{reason="not_json"} 1.0' in text
True
>>> 'basketcast_first_purchases_total 1.0' in text
True
>>> 'basketcast_batch_events_sum 1.0' in text
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE_LATEST", "WorkerMetrics"]

#: Seconds from a record's Kafka timestamp to the end of its batch (scores handed to the
#: producer): the event -> score latency.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Records per micro-batch: every batch pays a fixed cost (a model call, Redis round trips),
#: so small batches under load mean the worker is spending its time on that.
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000)


class BatchHistogram:
    """A Prometheus histogram fed a whole batch of values at once (one numpy pass; one
    `Histogram.observe` per record cost ~1 us of the worker's ~100 us per invoice).

    >>> registry = CollectorRegistry()
    >>> h = BatchHistogram("demo_seconds", "demo", (0.1, 1.0), registry)
    >>> h.observe_many([0.05, 0.1, 0.5, 3.0])
    >>> sample = registry.get_sample_value
    >>> [sample("demo_seconds_bucket", {"le": le}) for le in ("0.1", "1.0", "+Inf")]
    [2.0, 3.0, 4.0]
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = np.asarray(buckets, dtype=np.float64)
        self.counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)  # the last one: +Inf
        self.total = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Sequence[float] | np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return
        # bucket i holds bounds[i-1] < v <= bounds[i], as Prometheus' "le"
        counts = np.bincount(np.searchsorted(self.bounds, v, side="left"),
                             minlength=len(self.counts))
        with self._lock:
            self.counts += counts
            self.total += float(v.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative, total = np.cumsum(self.counts).astype(float).tolist(), self.total
        les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        yield HistogramMetricFamily(self.name, self.documentation,
                                    buckets=list(zip(les, cumulative, strict=True)),
                                    sum_value=total)


class LoopSeconds:
    """`basketcast_loop_seconds_total{phase}`: the scoring loop's time per phase, read from its
    own running totals when scraped (nothing is added to the loop's work).

    >>> registry = CollectorRegistry()
    >>> totals = {"fetch": 0.5, "prepare": 2.0}
    >>> _ = LoopSeconds(totals, registry)
    >>> registry.get_sample_value("basketcast_loop_seconds_total", {"phase": "prepare"})
    2.0
    """

    def __init__(self, totals: Mapping[str, float], registry: CollectorRegistry) -> None:
        self.totals = totals
        registry.register(self)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "basketcast_loop_seconds",
            "the scoring loop's time: fetch (waiting for records), prepare (validate and score), "
            "store_wait (waiting for the previous batch's Redis step and outputs), store_send "
            "(building and sending a batch's scripts), commit",
            labels=["phase"])
        for phase, value in list(self.totals.items()):
            family.add_metric([phase], value)
        yield family


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.events = Counter("basketcast_events", "invoice events received", registry=r)
        self.first_purchases = Counter(
            "basketcast_first_purchases", "first purchases scored", registry=r)
        self.dead_letters = Counter(
            "basketcast_dead_letters", "events dead-lettered", ["reason"], registry=r)
        self.guests = Counter("basketcast_guests", "invoices without a customer", registry=r)
        self.duplicates = Counter(
            "basketcast_duplicates", "invoices applied before (re-deliveries)", registry=r)
        self.online_updates = Counter(
            "basketcast_online_updates", "matured labels the online model learned", registry=r)
        self.drift_detections = Counter(
            "basketcast_drift_detections", "drift detections (ModelDrift events)", registry=r)
        self.online_version = Gauge(
            "basketcast_online_model_version", "online model version served", registry=r)
        self.latency = BatchHistogram(
            "basketcast_event_to_score_seconds",
            "from the record's Kafka timestamp to its batch's outputs handed to the producer",
            LATENCY_BUCKETS, r)
        self.batch_size = Histogram(
            "basketcast_batch_events", "invoice events per micro-batch",
            buckets=BATCH_BUCKETS, registry=r)

    def observe_batch(self, outcome: Any, raws: Sequence[Any], now: float | None = None) -> None:
        """Count a processed micro-batch (`stream.processor.Outcome`, its `RawEvent`s)."""
        c = outcome.counts
        self.events.inc(c.get("events", 0))
        self.first_purchases.inc(c.get("first", 0))
        self.guests.inc(c.get("guests", 0))
        self.duplicates.inc(c.get("dup", 0) + c.get("dup_first", 0))
        for key, n in c.items():
            if key.startswith("dead_letter:"):
                self.dead_letters.labels(reason=key.split(":", 1)[1]).inc(n)
        self.batch_size.observe(len(raws))
        now = time.time() if now is None else now
        self.latency.observe_many(
            [max(0.0, now - raw.timestamp) for raw in raws if raw.timestamp is not None])

    def watch_loop(self, totals: Mapping[str, float]) -> None:
        """Export the scoring loop's seconds per phase (`stream.consumer.ScoringLoop.seconds`)."""
        LoopSeconds(totals, self.registry)

    def observe_learner(self, learned: int, detections: int) -> None:
        self.online_updates.inc(learned)
        self.drift_detections.inc(detections)

    def render(self) -> bytes:
        return generate_latest(self.registry)
