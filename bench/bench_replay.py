"""Benchmark: `basketcast replay --speed 0` (stream.replay.produce) against a bare producer.

In one run, on the local broker, each round on fresh topics of 4 partitions:

- replay: the shipped log's invoice events through `stream.replay.produce` (JSON encoding,
  keys, progress accounting, acks from all replicas), as `basketcast replay --speed 0` does;
- the same with aiokafka's default 16 KB producer batches (what replay used before);
- the baseline: a bare aiokafka producer sending the same records already encoded.

Prints events/s and events per CPU-second of this process for each. Data: UCI Online Retail
II (CC BY 4.0).

    python bench/bench_replay.py
    python bench/bench_replay.py --rounds 3 --limit 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from unittest import mock

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stream.replay as replay  # noqa: E402
from stream.topics import delete_topics, ensure_topics  # noqa: E402

DATA = Path(os.environ.get("BASKETCAST_DATA", ROOT.parent / "shared/data/online_retail_ii.parquet"))


async def bare_producer(records: list[tuple[bytes | None, bytes]], bootstrap: str,
                        topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all",
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def with_default_batches(producer_class: type) -> Callable[..., AIOKafkaProducer]:
    """The producer replay makes, with aiokafka's default `max_batch_size`."""
    def make(**kwargs: object) -> AIOKafkaProducer:
        kwargs.pop("max_batch_size", None)
        return producer_class(**kwargs)
    return make


async def timed(run: Callable[[str], Awaitable[object]], bootstrap: str, prefix: str,
                n: int) -> tuple[float, float]:
    topic = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [topic], 4)
    wall, cpu = time.perf_counter(), time.process_time()
    await run(topic)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


async def main(args: argparse.Namespace) -> None:
    events = replay.load_events(DATA, limit=args.limit)
    records = [replay.encode(ev) for ev in events]
    prefix = f"bench-replay-{uuid.uuid4().hex[:6]}"
    print(f"{len(events):,} invoice events; {args.rounds} rounds; topics {prefix}-*")

    async def replayed(topic: str) -> None:
        await replay.produce(events, args.bootstrap, topic, progress=False)

    async def replayed_16k(topic: str) -> None:
        with mock.patch.object(replay, "AIOKafkaProducer",
                               with_default_batches(AIOKafkaProducer)):
            await replay.produce(events, args.bootstrap, topic, progress=False)

    async def bare(topic: str) -> None:
        await bare_producer(records, args.bootstrap, topic)

    runs = {"replay (stream.replay.produce)": replayed,
            "replay with 16 KB batches (before)": replayed_16k,
            "baseline: bare producer, records encoded beforehand": bare}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    try:
        for _ in range(args.rounds):
            for name, run in runs.items():
                results[name].append(await timed(run, args.bootstrap, prefix, len(events)))
    finally:
        await delete_topics(args.bootstrap, prefix)
    for name, figures in results.items():
        per_s = [f[0] for f in figures]
        per_cpu = [f[1] for f in figures]
        print(f"  {name}: {statistics.median(per_s):,.0f} events/s "
              f"({min(per_s):,.0f}-{max(per_s):,.0f}), "
              f"{statistics.median(per_cpu):,.0f} per CPU-second")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="at most N invoices")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS",
                                                              "127.0.0.1:9092"))
    asyncio.run(main(parser.parse_args()))
