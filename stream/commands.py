"""`basketcast worker`, `basketcast replay` and `basketcast schemas export` (see stream.cli).

Heavy imports happen inside the commands, so `basketcast --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="run the streaming worker (Faust)")
    w.add_argument("--model", type=Path, default=None,
                   help="model bundle directory (default: $BASKETCAST_MODEL_DIR)")
    w.add_argument("--loglevel", default="info", help="debug, info, warning (default: info)")
    w.set_defaults(func=_worker)

    r = sub.add_parser("replay", help="produce a line-level log to Kafka as invoice events")
    r.add_argument("--data", type=Path, required=True, help="CSV, Excel or Parquet log")
    r.add_argument("--speed", type=float, default=0.0,
                   help="0: as fast as possible (default); N: N x real time")
    r.add_argument("--limit", type=int, default=None, help="at most N invoices")
    r.add_argument("--since", type=datetime.fromisoformat, default=None,
                   help="first invoice time, inclusive (ISO date)")
    r.add_argument("--until", type=datetime.fromisoformat, default=None,
                   help="last invoice time, exclusive (ISO date)")
    r.add_argument("--topic", default=None, help="default: $BASKETCAST_TOPIC_INVOICES")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_replay)

    s = sub.add_parser("schemas", help="the event contracts")
    ssub = s.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    e = ssub.add_parser("export", help="write the JSON Schemas of the contracts")
    e.add_argument("dir", type=Path)
    e.set_defaults(func=_export)


def _worker(args: argparse.Namespace) -> int:
    import os

    # Before numpy/scikit-learn load: one OpenMP/BLAS thread per thread of the worker.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from stream.settings import Settings
    from stream.worker import run_worker

    settings = Settings.from_env()
    return run_worker(settings, args.model or settings.model_dir, args.loglevel)


def _replay(args: argparse.Namespace) -> int:
    import logging

    from stream.replay import load_events, produce
    from stream.settings import Settings
    from stream.topics import ensure_topics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env()
    topic = args.topic or settings.topic_invoices
    events = load_events(args.data, since=args.since, until=args.until, limit=args.limit)

    async def run() -> float:
        await ensure_topics(settings.kafka_bootstrap, [topic], settings.partitions)
        stats = await produce(events, settings.kafka_bootstrap, topic, speed=args.speed,
                              progress=not args.no_progress)
        return stats.events_per_s

    rate = asyncio.run(run())
    print(f"replayed {len(events)} invoices to {topic}: {rate:,.0f} events/s")
    return 0


def _export(args: argparse.Namespace) -> int:
    from schemas.export import export

    for path in export(args.dir):
        print(path)
    return 0
