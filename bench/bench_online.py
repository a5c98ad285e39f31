"""Benchmark: the streaming worker with online learning on vs off (`bench/bench_stream.py` twice).

Both runs replay the same invoices through one worker (`BASKETCAST_ONLINE_LEARNING=1` / `0`);
with a 90-day bundle and enough invoices, labels mature during the run, so the "on" figures
include the leader's learner steps, the model saves and the scorer's reloads. Prints both
runs' throughput and latency, and what the learner did in the "on" run.

(bench_stream's end markers are dated at the log's start: dated at its end, they moved every
partition's watermark there at once and the learner took every later label for a late one.)

    python bench/bench_online.py --model /tmp/b90 -n 30000 --latency-n 3000 --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench.bench_stream as bench_stream  # noqa: E402
from bench.bench_stream import cleanup  # noqa: E402
from stream.learner import OnlineStore  # noqa: E402
from stream.services import free_port  # noqa: E402

FIGURES = ("worker_per_s", "worker_per_cpu_s", "ratio_to_passthrough", "latency_p50_ms",
           "latency_p99_ms")


def bench(args: argparse.Namespace, online: bool, out: Path) -> dict:
    os.environ["BASKETCAST_ONLINE_LEARNING"] = "1" if online else "0"  # the worker inherits it
    ns = argparse.Namespace(
        model=args.model, fake_bundle=False, n=args.n, latency_n=args.latency_n, rate=args.rate,
        partitions=4, workers=1,
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        redis=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), web_port=free_port(),
        timeout=600.0, workdir=str(args.workdir), json=None, keep=True)
    result = asyncio.run(bench_stream.run(ns))
    out.write_text(json.dumps(result, indent=2))
    return result


async def learner_figures(redis_url: str, run_id: str) -> dict:
    client = aioredis.from_url(redis_url)
    try:
        return await OnlineStore(client, run_id).summary()
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="bundle (90-day: labels mature)")
    parser.add_argument("-n", type=int, default=30_000)
    parser.add_argument("--latency-n", type=int, default=3_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/basketcast-bench"))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    results = {}
    for online in (True, False):
        name = "online_on" if online else "online_off"
        res = bench(args, online, args.workdir / f"{name}.json")
        if online:
            res["learner"] = asyncio.run(learner_figures(redis_url, res["run"]))
        asyncio.run(cleanup(bootstrap, redis_url, res["run"]))
        results[name] = res
    print(f"\n{'figure':<24}{'online on':>14}{'online off':>14}")
    for f in FIGURES:
        on, off = results["online_on"].get(f), results["online_off"].get(f)
        print(f"{f:<24}{on if on is None else round(on, 2):>14}"
              f"{off if off is None else round(off, 2):>14}")
    learner = results["online_on"]["learner"]
    print(f"learner (on): version {learner.get('version')}, labels learned "
          f"{learner.get('learned')}, drifts {learner.get('drifts')}, model "
          f"{learner.get('model')}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
