"""Run the scoring worker: load the bundle, create the topics, start Faust.

Several processes with the same settings form one consumer group and share the partitions.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path

import faust
from redis.asyncio import Redis

from stream.app import create_app
from stream.processor import BatchProcessor
from stream.scoring import Scorer, serve_single_threaded
from stream.settings import Settings
from stream.store import CustomerStore
from stream.topics import ensure_worker_topics

log = logging.getLogger(__name__)


def build_app(settings: Settings, model_dir: Path) -> faust.App:
    """The worker's Faust app on the real services (the bundle is loaded here, once)."""
    from offline import load_bundle

    bundle = load_bundle(model_dir)
    serve_single_threaded(bundle)
    log.info("event=bundle_loaded dir=%s model_version=%s", model_dir, bundle.model_version)
    store = CustomerStore(Redis.from_url(settings.redis_url), settings.redis_prefix)
    processor = BatchProcessor(store, Scorer(bundle), native=bool(settings.native_reader))
    if settings.native_reader and processor.read_op is None:
        log.warning("event=native_reader_missing: stream._fastop was not built (no cargo at "
                    "install time); every invoice takes the Python path, ~25 %% slower")
    app = create_app(settings, processor)
    freeze_startup_objects()
    log_long_collections()
    return app


def freeze_startup_objects() -> None:
    """Keep the collector off what was loaded at start-up (the bundle, Faust, pandas).

    A micro-batch allocates tens of thousands of objects (an invoice's lines), which sets off
    collections that each walked the whole start-up heap: 70 % of the validation time went to
    the collector. Frozen objects are never scanned.

    The first generation's threshold counts objects allocated and not yet freed. A batch's
    records, ops, commands and replies are freed by reference counting once the batch is
    done; at 10,000 a collection still ran several times a batch, walking the live batch
    (76 first- and 6 second-generation collections, ~130 ms of a 2.5 s run of 37,765 invoices,
    ~5 %). At 200,000 none ran in the same run; what is left to the collector (reference cycles)
    is rare here, and is still collected once that many objects accumulate. Such a collection
    walks ~200,000 objects: 4.2 ms for 200,000 live small objects (`gc.collect(0)`, timed).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_FIRST_GENERATION, 10, 10)


#: the collector's first-generation threshold in the worker (Python's default: 700)
GC_FIRST_GENERATION = 200_000


def log_long_collections(threshold_ms: float = 20.0) -> None:
    """Log each garbage collection that stopped the worker for `threshold_ms` or more
    (`event=gc_pause`): a full collection walks every object made since start-up."""
    started: list[float] = []

    def on_collection(phase: str, info: dict) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            ms = (time.perf_counter() - started.pop()) * 1e3
            if ms >= threshold_ms:
                log.warning("event=gc_pause generation=%d ms=%.1f collected=%d",
                            info["generation"], ms, info["collected"])

    gc.callbacks.append(on_collection)


def run_worker(settings: Settings, model_dir: Path, loglevel: str = "info") -> int:
    app = build_app(settings, model_dir)
    asyncio.run(ensure_worker_topics(settings))
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()  # returns when the worker stops (SIGTERM, Ctrl-C)
    return 0
