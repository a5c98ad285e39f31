"""Benchmark: Redis's CPU per applied invoice for the customer-state script (`stream.store`).

The shipped log's first N invoices go through the worker's own `BatchProcessor` in batches of
2,000 (each prepared after the previous one was stored), each round under a fresh key prefix;
only the store step is timed:

- the script: `CustomerStore.apply` and `register`, as the worker stores a batch;
- the baseline, in the same run: the same prepared batches (the same commands and bytes) with
  a script that only returns, so the difference is the script's own work (not the protocol,
  the dispatch or the arguments).

Prints Redis's CPU (its `INFO cpu`, main thread) and this client's wall time per applied
invoice, median of the rounds. Needs the local Redis (`make services`). Data: UCI Online Retail
II (CC BY 4.0).

    python bench/bench_store.py --model models/latest
    python bench/bench_store.py --model models/latest -n 10000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stream.store as store_module  # noqa: E402
from stream.processor import BatchProcessor, Prepared, RawEvent  # noqa: E402
from stream.replay import encode, load_events  # noqa: E402
from stream.scoring import Scorer, serve_single_threaded  # noqa: E402

DATA = Path(os.environ.get("BASKETCAST_DATA", ROOT.parent / "shared/data/online_retail_ii.parquet"))
BATCH = 2_000
RETURN_ONLY = "return {'applied'}"


async def redis_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


async def store_round(redis: Redis, processor: BatchProcessor, raws: list[RawEvent],
                      prepared: list[Prepared]) -> tuple[float, float, int]:
    """(Redis CPU s, client wall s, applied invoices) for storing `raws` once, a batch at a
    time, each prepared after the previous one was stored, as the worker does (and kept in
    `prepared`); or, if `prepared` is given, storing those same batches again."""
    cpu = wall = 0.0
    applied = 0
    replay = bool(prepared)
    for k, i in enumerate(range(0, len(raws), BATCH)):
        if replay:
            batch = prepared[k]
        else:
            batch = await processor.prepare(raws[i:i + BATCH])
            prepared.append(batch)
        c0, t0 = await redis_cpu(redis), time.perf_counter()
        await processor.store_batch(batch)
        wall += time.perf_counter() - t0
        cpu += await redis_cpu(redis) - c0
        applied += len(batch.ops)
    return cpu, wall, applied


async def drop(redis: Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=10_000)]
    for i in range(0, len(keys), 1_000):
        await redis.delete(*keys[i:i + 1_000])


async def main(args: argparse.Namespace) -> None:
    from offline import load_bundle

    bundle = load_bundle(args.model)
    serve_single_threaded(bundle)
    raws = [RawEvent(value, key, "invoices", 0, i)
            for i, (key, value) in enumerate(map(encode, load_events(DATA, limit=args.n)))]
    redis = Redis.from_url(args.redis)
    figures: dict[str, list[tuple[float, float]]] = {"script": [], "baseline (return only)": []}
    try:
        for r in range(args.rounds):
            prepared: list[Prepared] = []  # the script's batches, stored again by the baseline
            for name, script in (("script", store_module.LUA_APPLY),
                                 ("baseline (return only)", RETURN_ONLY)):
                prefix = f"bench-store-{uuid.uuid4().hex[:8]}:"
                store = store_module.CustomerStore(redis, prefix)
                processor = BatchProcessor(store, Scorer(bundle))
                store._sha = await redis.script_load(script)
                cpu, wall, n = await store_round(redis, processor, raws, prepared)
                await drop(redis, prefix)
                figures[name].append((cpu / n * 1e6, wall / n * 1e6))
                print(f"round {r + 1} {name}: {n:,} invoices, Redis {cpu / n * 1e6:.1f} us, "
                      f"client wall {wall / n * 1e6:.1f} us per applied invoice")
    finally:
        await redis.aclose()
    print("\nmedians per applied invoice:")
    for name, rows in figures.items():
        print(f"  {name:24s} Redis CPU {statistics.median(r[0] for r in rows):5.1f} us, "
              f"client wall {statistics.median(r[1] for r in rows):5.1f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/latest"))
    parser.add_argument("-n", type=int, default=20_000, help="invoices from the log's start")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    asyncio.run(main(parser.parse_args()))
