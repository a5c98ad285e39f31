"""Benchmark at full-log scale: every invoice of the shipped log -> Kafka -> worker -> scores.

In one run, on the local broker and Redis, with one worker process and 4 partitions:

- ceiling: a bare aiokafka consume->produce passthrough of the full log's records;
- worker throughput: the full log (about 37,800 invoices) produced as fast as possible, timed
  until the worker has processed the last record of every partition (end markers);
- latency: then, at a fixed offered rate, invoices of first-time customers (the log's first
  `--latency-n` invoices under new customer and invoice ids, so each one is scored): the time
  from produce to the score on `customer-scores`, p50 / p99.

The building blocks (markers, passthrough child, latency probe) are `bench/bench_stream.py`'s.

    python bench/bench_full.py --model models/latest
    python bench/bench_full.py --model models/latest --json bench-full.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_stream as bs  # noqa: E402

from schemas.invoice import InvoiceEvent  # noqa: E402
from stream.replay import encode, load_events  # noqa: E402
from stream.topics import ensure_topics  # noqa: E402


def fresh_customers(events: list[InvoiceEvent], tag: str) -> list[InvoiceEvent]:
    """The same invoices under new customer and invoice ids: every customer is new again."""
    return [
        ev.model_copy(update={
            "invoice_id": f"{tag}{ev.invoice_id}",
            "customer_id": None if ev.customer_id is None else f"{tag}{ev.customer_id}",
        })
        for ev in events
    ]


async def run(args: argparse.Namespace) -> dict:
    run_id = f"benchfull-{uuid.uuid4().hex[:8]}"
    P, bootstrap = args.partitions, args.bootstrap
    t = {k: f"{run_id}-{k}" for k in ("in", "out", "dlq", "pin", "pout")}
    await ensure_topics(bootstrap, list(t.values()), P)
    work = Path(args.workdir) / run_id
    work.mkdir(parents=True, exist_ok=True)

    t_load = time.perf_counter()
    events = load_events(args.data)
    records = [encode(ev) for ev in events]
    lat_events = fresh_customers(events[: args.latency_n], "L")
    print(f"{len(records):,} invoices in {args.data.name} (loaded in "
          f"{time.perf_counter() - t_load:.1f}s); {P} partitions; run {run_id}")

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": args.redis,
           "BASKETCAST_APP_ID": run_id, "BASKETCAST_REDIS_PREFIX": run_id,
           "BASKETCAST_TOPIC_INVOICES": t["in"], "BASKETCAST_TOPIC_SCORES": t["out"],
           "BASKETCAST_TOPIC_DLQ": t["dlq"], "BASKETCAST_TOPIC_DRIFT": f"{run_id}-drift",
           "BASKETCAST_PARTITIONS": str(P), "BASKETCAST_WEB_PORT": str(args.web_port),
           "PYTHONPATH": str(ROOT)}
    worker_cmd = [sys.executable, "-m", "stream", "worker", "--model",
                  str(args.model.resolve()), "--loglevel", "warning"]
    result: dict = {"run": run_id, "invoices": len(records), "partitions": P,
                    "bundle": str(args.model), "cpus": os.cpu_count(),
                    "loadavg_at_start": os.getloadavg()[0]}
    procs: list[subprocess.Popen] = []
    try:
        # --- the ceiling: passthrough of the same records ------------------------------------
        pt = bs.start_process([sys.executable, str(ROOT / "bench" / "bench_stream.py"),
                               "--passthrough-child", t["pin"], t["pout"], f"{run_id}-pt",
                               "--bootstrap", bootstrap], env, work / "pt.log")
        procs.append(pt)
        result.update(await bs.measure_passthrough(bootstrap, t["pin"], t["pout"], records, P,
                                                   run_id, pt, args.timeout))
        pt.terminate()

        # --- the worker on the full log ------------------------------------------------------
        worker = bs.start_process(worker_cmd, env, work / "worker.log")
        procs.append(worker)
        out = await bs.consumer_for(bootstrap, t["out"])
        print("worker: warming up (bundle load, group join)")
        _, warm = await bs.produce_all(bootstrap, t["in"], [], P, run_id, 1)
        await bs.wait_markers(out, warm, args.timeout)
        print("worker throughput, full log:")
        c0 = bs.cpu_seconds(worker.pid)
        t0, markers = await bs.produce_all(bootstrap, t["in"], records, P, run_id, 2)
        t1, n_out = await bs.wait_markers(out, markers, args.timeout)
        result["worker_per_cpu_s"] = len(records) / max(bs.cpu_seconds(worker.pid) - c0, 1e-9)
        result["worker_seconds"] = t1 - t0
        result["worker_per_s"] = len(records) / (t1 - t0)
        result["scores_out"] = n_out + await bs.drain_until_quiet(out) - len(markers)
        result["scores_expected"] = bs.expected_scores(events)
        result["ratio_to_passthrough"] = result["worker_per_s"] / result["passthrough_per_s"]
        print(f"  worker: {result['worker_per_s']:,.0f} invoices/s over {t1 - t0:.1f}s "
              f"({result['ratio_to_passthrough']:.1%} of passthrough), "
              f"{result['scores_out']:,} of {result['scores_expected']:,} scores; "
              f"{result['worker_per_cpu_s']:,.0f} invoices per "
              f"worker CPU-second")

        # --- latency at a fixed offered rate, first-time customers ---------------------------
        if lat_events:
            result.update(await bs.latency(bootstrap, t["in"], out, lat_events, args.rate,
                                           args.timeout))
        await out.stop()
    finally:
        bs.stop_processes(procs)
        if not args.keep:
            await bs.cleanup(bootstrap, args.redis, run_id)  # every topic is named run_id-*
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "latest")
    parser.add_argument("--data", type=Path, default=bs.DATA)
    parser.add_argument("--latency-n", type=int, default=5_000,
                        help="first-time-customer invoices for the latency run")
    parser.add_argument("--rate", type=float, default=200.0, help="offered invoices/s (latency)")
    bs.add_run_args(parser, web_port=6167, timeout=1200.0)
    args = parser.parse_args()
    bs.report(asyncio.run(run(args)), args.json)


if __name__ == "__main__":
    main()
