"""Benchmark: invoices -> Kafka -> worker -> `customer-scores`, against a bare passthrough.

Prints, for one worker process on the local broker and Redis:

- worker throughput (invoices/s) draining N invoices produced as fast as possible;
- the ceiling: a bare aiokafka consume->produce passthrough of the same records, same broker;
- event->score latency p50/p99 (produce time -> output received) at a fixed offered rate.

End markers (one fresh customer per partition, sent last to that partition) tell when the
worker has processed everything before them. Every run uses its own topics and Redis prefix.

    python bench/bench_stream.py --model models/latest -n 20000 --rate 500 --latency-n 5000
    python bench/bench_stream.py --fake-bundle -n 20000   # the pipeline without model cost
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.invoice import InvoiceEvent, InvoiceLine  # noqa: E402
from stream.consumer import LOOP_PHASES  # noqa: E402
from stream.replay import encode, load_events  # noqa: E402
from stream.topics import delete_topics, ensure_topics  # noqa: E402

DATA = Path(os.environ.get("BASKETCAST_DATA", ROOT.parent / "shared/data/online_retail_ii.parquet"))

FAKE_WORKER = f"""
import sys; sys.path.insert(0, {str(ROOT / 'tests' / 'stream')!r})
import asyncio, os, faust, redis.asyncio as aioredis
from stream_fakes import FakeBundle
from stream.app import create_app
from stream.processor import BatchProcessor
from stream.scoring import Scorer
from stream.settings import Settings
from stream.store import CustomerStore
from stream.worker import freeze_startup_objects, log_long_collections
s = Settings.from_env()
store = CustomerStore(aioredis.from_url(s.redis_url), s.redis_prefix)
app = create_app(s, BatchProcessor(store, Scorer(FakeBundle()), native=bool(s.native_reader)),
                 web_enabled=False)
freeze_startup_objects()
log_long_collections()
worker = faust.Worker(app, loglevel="warning")
if os.environ.get("BENCH_PROFILE"):  # python -m pstats FILE
    import cProfile
    cProfile.run("worker.execute_from_commandline()", os.environ["BENCH_PROFILE"])
else:
    worker.execute_from_commandline()
"""


#: End markers carry the first invoice's time, so they never advance the event-time watermarks
#: (and with them label maturation) beyond the replayed log.
MARKER_TIME = datetime(2009, 12, 1)


def marker(partition: int, run: str, i: int) -> tuple[bytes, bytes]:
    ev = InvoiceEvent(
        invoice_id=f"M{i}{partition:04d}", customer_id=f"9{partition:03d}{i:05d}",
        invoiced_at=MARKER_TIME, country="United Kingdom",
        lines=(InvoiceLine(stock_code="85048", description="MARKER", quantity=1, unit_price=1.0),),
    )
    return encode(ev)  # type: ignore[return-value]


async def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]],
                      partitions: int, run: str, round_: int) -> tuple[float, set[bytes]]:
    """Produce records then one marker per partition; returns (start time, marker keys)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=262144)
    await producer.start()
    try:
        t0 = time.perf_counter()
        for key, value in records:
            await producer.send(topic, value, key=key)
        markers = set()
        for p in range(partitions):
            key, value = marker(p, run, round_)
            markers.add(key)
            await producer.send(topic, value, key=key, partition=p)
        await producer.flush()
        produced = time.perf_counter() - t0
    finally:
        await producer.stop()
    print(f"  produced {len(records):,} records in {produced:.2f}s "
          f"({len(records) / produced:,.0f}/s)")
    return t0, markers


async def wait_markers(consumer: AIOKafkaConsumer, markers: set[bytes], timeout: float,
                       expect_count: int | None = None,
                       proc: subprocess.Popen | None = None,
                       procs: Sequence[subprocess.Popen] = ()) -> tuple[float, int]:
    """Read outputs until every marker key was seen (or `expect_count` records); fails at once
    if one of the processes producing them exits."""
    seen, count = set(), 0
    deadline = time.perf_counter() + timeout
    watched = [*procs, *([proc] if proc is not None else [])]
    while (seen != markers) if expect_count is None else (count < expect_count):
        for p in watched:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[:4]} exited with {p.returncode}: see its log")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{len(seen)}/{len(markers)} markers, {count} records")
        batch = await consumer.getmany(timeout_ms=200)
        for recs in batch.values():
            count += len(recs)
            seen.update(r.key for r in recs if r.key in markers)
    return time.perf_counter(), count


async def drain_until_quiet(consumer: AIOKafkaConsumer, quiet: float = 1.0,
                            limit: float = 15.0) -> int:
    """Output records still arriving after the end markers, counted (not timed): a marker's
    score can be fetched before earlier scores that went to other output partitions. Reads
    until none came for `quiet` seconds (at most `limit` seconds)."""
    count, end = 0, time.perf_counter() + limit
    last = time.perf_counter()
    while time.perf_counter() < end and time.perf_counter() - last < quiet:
        batch = await consumer.getmany(timeout_ms=100)
        n = sum(len(recs) for recs in batch.values())
        if n:
            count, last = count + n, time.perf_counter()
    return count


def expected_scores(events: Sequence[InvoiceEvent]) -> int:
    """Scores a complete run emits for `events` (log order): one per first purchase, as every
    customer is new to the run's own Redis prefix."""
    from offline.events import first_purchases

    return len(first_purchases(events))


async def consumer_for(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                         group_id=f"bench-{uuid.uuid4().hex[:8]}", fetch_max_wait_ms=20)
    await c.start()
    while not c.assignment():
        await c.getmany(timeout_ms=100)
    await c.seek_to_end()
    return c


async def passthrough(bootstrap: str, source: str, sink: str, group: str) -> None:
    """The ceiling: consume raw records and produce them unchanged (a child process)."""
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True,
                                fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1,
                                max_batch_size=262144)
    await consumer.start()
    await producer.start()
    print("ready", flush=True)
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=500)
            for recs in batch.values():
                for r in recs:
                    await producer.send(sink, r.value, key=r.key)
    finally:
        await consumer.stop()
        await producer.stop()


async def measure_passthrough(bootstrap: str, source: str, sink: str,
                              records: list[tuple[bytes | None, bytes]], partitions: int,
                              run_id: str, proc: subprocess.Popen, timeout: float) -> dict:
    """Time the passthrough child `proc` (source -> sink) on `records`, after the same warm-up
    as the worker gets: its group joined and its fetches going (the group join alone took
    ~0.5 s, which used to count against the passthrough's 20,000 records)."""
    out = await consumer_for(bootstrap, sink)
    print("passthrough: warming up")
    _, warm = await produce_all(bootstrap, source, [], partitions, run_id, 1)
    await wait_markers(out, warm, timeout, expect_count=len(warm), proc=proc)
    print("passthrough:")
    c0 = cpu_seconds(proc.pid)
    t0, markers = await produce_all(bootstrap, source, records, partitions, run_id, 0)
    t1, _ = await wait_markers(out, markers, timeout, expect_count=len(records) + len(markers),
                               proc=proc)
    await out.stop()
    result = {"passthrough_per_s": len(records) / (t1 - t0),
              "passthrough_per_cpu_s": len(records) / max(cpu_seconds(proc.pid) - c0, 1e-9)}
    print(f"  passthrough: {result['passthrough_per_s']:,.0f} records/s "
          f"({result['passthrough_per_cpu_s']:,.0f} per CPU-second)")
    return result


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:  # refused, or HTTP 503 while starting
        return None


#: the worker's /metrics samples of the scoring loop's seconds, per phase
LOOP_SAMPLES = {p: f'basketcast_loop_seconds_total{{phase="{p}"}}' for p in LOOP_PHASES}
#: the worker's /metrics samples the benchmark reads (summed over the workers)
SCRAPED = ("basketcast_batch_events_sum", "basketcast_batch_events_count",
           *LOOP_SAMPLES.values())


def scrape(first_port: int, n: int = 1) -> dict[str, float] | None:
    """`SCRAPED` so far, summed over the workers' `/metrics`; None if one does not answer."""
    totals = dict.fromkeys(SCRAPED, 0.0)
    for port in range(first_port, first_port + n):
        text = _get(f"http://127.0.0.1:{port}/metrics")
        if text is None:
            return None
        values = dict(line.rsplit(" ", 1) for line in text.splitlines()
                      if line.startswith(("basketcast_batch_events_", "basketcast_loop_")))
        try:
            for name in SCRAPED:
                totals[name] += float(values[name])
        except (KeyError, ValueError):
            return None
    return totals


def loop_shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each phase's share of the scoring loop's time between two scrapes."""
    spent = {phase: after[name] - before[name] for phase, name in LOOP_SAMPLES.items()}
    total = sum(spent.values())
    return {phase: t / total for phase, t in spent.items()} if total > 0 else {}


async def wait_assigned(ports: list[int], partitions: int, timeout: float) -> None:
    """Until every worker's `/health` shows partitions and together they hold all of them."""
    deadline = time.perf_counter() + timeout
    while True:
        held = []
        for port in ports:
            text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/health")
            held.append(set(json.loads(text)["consumer_lag"]["partitions"]) if text else set())
        if all(held) and len(set().union(*held)) == partitions:
            return
        if time.perf_counter() > deadline:
            raise TimeoutError(f"partitions held per worker: {held}")
        await asyncio.sleep(0.5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc; 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_process(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=log.parent)


async def run(args: argparse.Namespace) -> dict:
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    P, bootstrap = args.partitions, args.bootstrap
    t = {k: f"{run_id}-{k}" for k in ("in", "out", "dlq", "pin", "pout")}
    await ensure_topics(bootstrap, list(t.values()), P)
    work = Path(args.workdir) / run_id
    work.mkdir(parents=True, exist_ok=True)

    events = load_events(DATA, limit=args.n + args.latency_n)
    thr_events, lat_events = events[: args.n], events[args.n:]
    records = [encode(ev) for ev in thr_events]
    print(f"{len(records):,} invoices for throughput, {len(lat_events):,} for latency; "
          f"{P} partitions; run {run_id}")

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": args.redis,
           "BASKETCAST_APP_ID": run_id, "BASKETCAST_REDIS_PREFIX": run_id,
           "BASKETCAST_TOPIC_INVOICES": t["in"], "BASKETCAST_TOPIC_SCORES": t["out"],
           "BASKETCAST_TOPIC_DLQ": t["dlq"], "BASKETCAST_TOPIC_DRIFT": f"{run_id}-drift",
           "BASKETCAST_PARTITIONS": str(P), "BASKETCAST_WEB_PORT": str(args.web_port),
           "PYTHONPATH": str(ROOT)}
    if args.fake_bundle:
        cmd = [sys.executable, "-c", FAKE_WORKER]
    else:
        cmd = [sys.executable, "-m", "stream", "worker", "--model", str(args.model.resolve()),
               "--loglevel", "info"]
    procs = []
    result: dict = {"run": run_id, "n": len(records), "partitions": P,
                    "bundle": "fake" if args.fake_bundle else str(args.model),
                    "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()[0]}
    try:
        # --- passthrough ceiling -------------------------------------------------------
        pt = start_process([sys.executable, __file__, "--passthrough-child", t["pin"], t["pout"],
                            f"{run_id}-pt", "--bootstrap", bootstrap], env, work / "pt.log")
        procs.append(pt)
        result.update(await measure_passthrough(bootstrap, t["pin"], t["pout"], records, P,
                                                run_id, pt, args.timeout))
        pt.terminate()

        # --- worker throughput ---------------------------------------------------------
        N = args.workers
        workers = [start_process(cmd, {**env, "BASKETCAST_WEB_PORT": str(args.web_port + i)},
                                 work / f"worker{i}.log") for i in range(N)]
        procs.extend(workers)
        out = await consumer_for(bootstrap, t["out"])
        print("worker: warming up" + (f" ({N} processes)" if N > 1 else ""))
        if N > 1:  # every process holds partitions before the clock starts: no rebalance in it
            await wait_assigned([args.web_port + i for i in range(N)], P, args.timeout)
        _, warm = await produce_all(bootstrap, t["in"], [], P, run_id, 1)
        await wait_markers(out, warm, args.timeout, procs=workers)
        print("worker throughput:")
        c0 = sum(cpu_seconds(w.pid) for w in workers)
        b0 = await asyncio.to_thread(scrape, args.web_port, N)
        t0, markers = await produce_all(bootstrap, t["in"], records, P, run_id, 2)
        t1, n_out = await wait_markers(out, markers, args.timeout, procs=workers)
        b1 = await asyncio.to_thread(scrape, args.web_port, N)
        if b0 and b1:
            batches = b1["basketcast_batch_events_count"] - b0["basketcast_batch_events_count"]
            if batches > 0:
                result["mean_batch_events"] = (b1["basketcast_batch_events_sum"]
                                               - b0["basketcast_batch_events_sum"]) / batches
            result["loop_shares"] = loop_shares(b0, b1)
        result["workers"] = N
        result["worker_per_s"] = len(records) / (t1 - t0)
        result["worker_per_cpu_s"] = len(records) / max(
            sum(cpu_seconds(w.pid) for w in workers) - c0, 1e-9)
        result["scores_out"] = n_out + await drain_until_quiet(out) - len(markers)
        result["scores_expected"] = expected_scores(thr_events)
        result["ratio_to_passthrough"] = result["worker_per_s"] / result["passthrough_per_s"]
        print(f"  {'worker' if N == 1 else f'{N} workers'}: {result['worker_per_s']:,.0f} "
              f"invoices/s ({result['ratio_to_passthrough']:.0%} of passthrough), "
              f"{result['worker_per_cpu_s']:,.0f} per CPU-second, {result['scores_out']:,} of "
              f"{result['scores_expected']:,} scores"
              + (f", {result['mean_batch_events']:,.0f} events per batch"
                 if "mean_batch_events" in result else ""))
        if result.get("loop_shares"):
            print("  scoring loop's time: " + ", ".join(
                f"{phase} {share:.0%}" for phase, share in result["loop_shares"].items()))

        # --- latency at a fixed offered rate -------------------------------------------
        if lat_events:
            result.update(await latency(bootstrap, t["in"], out, lat_events, args.rate,
                                        args.timeout))
        await out.stop()
    finally:
        stop_processes(procs)
        if not args.keep:
            await cleanup(bootstrap, args.redis, run_id)
    return result


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """Terminate the run's child processes (kill what ignores SIGTERM for 30 s)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


async def cleanup(bootstrap: str, redis_url: str, run_id: str) -> None:
    """Remove the run's Redis keys and topics (Faust's own topics too)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{run_id}:*", count=10_000)]
    for i in range(0, len(keys), 5_000):
        await client.unlink(*keys[i:i + 5_000])
    await client.aclose()
    await delete_topics(bootstrap, run_id)


async def latency(bootstrap: str, topic: str, out: AIOKafkaConsumer,
                  events: list[InvoiceEvent], rate: float, timeout: float) -> dict:
    """Offer `events` at `rate`/s; latency of every score = received - produced (wall clock)."""
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()

    async def read() -> None:
        while True:
            batch = await out.getmany(timeout_ms=50)
            now = time.perf_counter()
            for recs in batch.values():
                for r in recs:
                    got.setdefault(json.loads(r.value)["invoice_id"], now)

    reader = asyncio.create_task(read())
    try:
        start = time.perf_counter()
        for i, ev in enumerate(events):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key, value = encode(ev)
            sent[ev.invoice_id] = time.perf_counter()
            await producer.send(topic, value, key=key)
        await producer.flush()
        offered = len(events) / (time.perf_counter() - start)
        end = time.perf_counter() + timeout
        quiet = time.perf_counter()
        n = -1
        while time.perf_counter() < end:  # until no new score for 2 s
            if len(got) != n:
                n, quiet = len(got), time.perf_counter()
            elif time.perf_counter() - quiet > 2.0:
                break
            await asyncio.sleep(0.05)
    finally:
        reader.cancel()
        await producer.stop()
    lat = sorted((got[i] - sent[i]) * 1000 for i in got if i in sent)
    if not lat:
        return {"latency_scores": 0}
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(f"latency at {offered:,.0f} invoices/s offered: {len(lat):,} scores, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms")
    return {"offered_per_s": offered, "latency_scores": len(lat), "latency_p50_ms": p50,
            "latency_p99_ms": p99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/latest"))
    parser.add_argument("--fake-bundle", action="store_true")
    parser.add_argument("-n", type=int, default=20_000, help="invoices for the throughput run")
    parser.add_argument("--latency-n", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=500.0, help="offered invoices/s (latency)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="whole runs (passthrough, worker, latency) one after the other; "
                             "the figures are then the medians, each run's kept under 'runs'")
    add_run_args(parser, web_port=6166, timeout=300.0)
    parser.add_argument("--passthrough-child", nargs=3, metavar=("SOURCE", "SINK", "GROUP"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.passthrough_child:
        asyncio.run(passthrough(args.bootstrap, *args.passthrough_child))
        return
    runs = []
    for i in range(args.repeat):
        if args.repeat > 1:
            print(f"=== run {i + 1} of {args.repeat}")
        runs.append(asyncio.run(run(args)))
    report(medians(runs) if len(runs) > 1 else runs[0], args.json)


#: the figures `medians` summarises (the rest is the same in every run, or per run only)
FIGURES = ("passthrough_per_s", "passthrough_per_cpu_s", "worker_per_s", "worker_per_cpu_s",
           "ratio_to_passthrough", "mean_batch_events", "latency_p50_ms", "latency_p99_ms")


def medians(runs: list[dict]) -> dict:
    """The median of each figure over the runs (the ratio: the median of the runs' ratios,
    each against the passthrough measured in the same run), with every run's figures.

    >>> runs = [{"worker_per_s": w, "passthrough_per_s": p, "ratio_to_passthrough": w / p}
    ...         for w, p in [(10, 40), (30, 60), (20, 25)]]
    >>> m = medians(runs)
    median of 3 runs: worker 20/s, passthrough 40/s, ratio 50% (runs: 25%, 50%, 80%)
    >>> m["worker_per_s"], m["ratio_to_passthrough"], len(m["runs"])
    (20, 0.5, 3)
    """
    out: dict = {"runs": runs}
    for name in FIGURES:
        values = [r[name] for r in runs if name in r]
        if values:
            out[name] = statistics.median(values)
    if "ratio_to_passthrough" in out:
        ratios = ", ".join(f"{r['ratio_to_passthrough']:.0%}" for r in runs
                           if "ratio_to_passthrough" in r)
        print(f"median of {len(runs)} runs: worker {out['worker_per_s']:,.0f}/s, passthrough "
              f"{out['passthrough_per_s']:,.0f}/s, ratio {out['ratio_to_passthrough']:.0%} "
              f"(runs: {ratios})")
    return out


def add_run_args(parser: argparse.ArgumentParser, *, web_port: int, timeout: float) -> None:
    """Where the services are and what a run keeps (shared by the stream benchmarks)."""
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes sharing the work (same group; web ports from "
                             "--web-port on)")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS",
                                                              "127.0.0.1:9092"))
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--web-port", type=int, default=web_port)
    parser.add_argument("--timeout", type=float, default=timeout)
    parser.add_argument("--workdir", default="/tmp/basketcast-bench")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and keys")


def report(result: dict, json_path: Path | None) -> None:
    """Print the figures as JSON (and write them to `json_path`)."""
    text = json.dumps(result, indent=2)
    print(text)
    if json_path:
        json_path.write_text(text)


if __name__ == "__main__":
    main()
