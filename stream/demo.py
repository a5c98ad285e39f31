"""`basketcast demo`: the whole product on the shipped data, in one command.

Starts the services (docker compose where a Docker engine answers, the local Kafka and Redis
otherwise), trains a bundle if none exists, starts a worker, replays the log through Kafka and
shows, live, what a marketer sees: new customers as they are scored. Ends with a summary and
stops everything it started, on Ctrl-C too.

Each run works in its own namespace (topics, consumer group and Redis prefix suffixed with a
run id), so running it twice works and never mixes runs; the namespace is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path

from stream.services import free_port
from stream.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "online_retail_ii.parquet"
ROWS_SHOWN = 14
IDLE_DONE_S = 5.0
#: How long the demo waits for the worker to load the bundle and join its group.
WORKER_READY_TIMEOUT_S = 120.0


@dataclass
class Tally:
    """What the demo has seen on the topics so far."""

    invoices: int = 0
    guests: int = 0
    scored: dict[str, dict] = field(default_factory=dict)  # event_id -> score
    duplicates: int = 0
    dead_letters: int = 0
    drift_events: int = 0
    produced_at_ms: dict[str, int] = field(default_factory=dict)  # invoice_id -> record ts
    latencies_ms: list[float] = field(default_factory=list)
    first_in_ms: int | None = None
    last_out_ms: int | None = None
    last_activity: float = field(default_factory=time.monotonic)
    recent: deque = field(default_factory=lambda: deque(maxlen=ROWS_SHOWN))
    first_baskets: dict[str, tuple[str | None, float, int]] = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _render(tally: Tally, title: str):
    from rich.table import Table

    table = Table(title=title, caption=_counters(tally), expand=True)
    for col, justify in [("customer", "left"), ("country", "left"), ("first basket", "right"),
                         ("segment", "left"), ("p_repeat", "right"), ("orders", "right"),
                         ("spend (GBP)", "right")]:
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in reversed(tally.recent):
        country, basket, lines = tally.first_baskets.get(s["invoice_id"], (None, 0.0, 0))
        table.add_row(
            s["customer_id"], country or "?", f"{basket:,.2f} ({lines} lines)",
            s["segment_label"], f"{s['p_repeat']:.2f}",
            f"{s['expected_orders']:.1f}", f"{s['expected_spend']:,.0f}",
        )
    return table


def _counters(t: Tally) -> str:
    return (f"invoices {t.invoices:,} | scored {len(t.scored):,} | guests {t.guests:,} | "
            f"dead letters {t.dead_letters:,} | drift {t.drift_events}")


async def _watch(settings: Settings, tally: Tally, stop: asyncio.Event, live) -> None:
    from aiokafka import AIOKafkaConsumer

    topics = [settings.topic_invoices, settings.topic_scores, settings.topic_dlq,
              settings.topic_drift]
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=250, max_records=5000)
            for tp, records in batches.items():
                for r in records:
                    _observe(tally, settings, tp.topic, r.value, r.timestamp)
            if batches:
                tally.last_activity = time.monotonic()
            live.update(_render(tally, "basketcast: new customers, scored at their first order"))
    finally:
        await consumer.stop()


def _observe(t: Tally, s: Settings, topic: str, value: bytes, ts_ms: int) -> None:
    if topic == s.topic_invoices:
        t.invoices += 1
        t.first_in_ms = ts_ms if t.first_in_ms is None else min(t.first_in_ms, ts_ms)
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ev = json.loads(value)
            t.produced_at_ms.setdefault(ev["invoice_id"], ts_ms)
            if not ev.get("customer_id"):
                t.guests += 1
            else:
                basket = sum(line["quantity"] * line["unit_price"] for line in ev["lines"])
                t.first_baskets[ev["invoice_id"]] = (ev.get("country"), basket, len(ev["lines"]))
    elif topic == s.topic_scores:
        score = json.loads(value)
        if score["event_id"] in t.scored:
            t.duplicates += 1
            return
        t.scored[score["event_id"]] = score
        t.recent.append(score)
        t.last_out_ms = ts_ms if t.last_out_ms is None else max(t.last_out_ms, ts_ms)
        produced = t.produced_at_ms.get(score["invoice_id"])
        if produced is not None:
            t.latencies_ms.append(ts_ms - produced)
    elif topic == s.topic_dlq:
        t.dead_letters += 1
    elif topic == s.topic_drift:
        t.drift_events += 1


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        run = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        self.env = {
            **os.environ,
            "BASKETCAST_TOPIC_INVOICES": f"{run}.invoices",
            "BASKETCAST_TOPIC_SCORES": f"{run}.customer-scores",
            "BASKETCAST_TOPIC_DLQ": f"{run}.invoices-dlq",
            "BASKETCAST_TOPIC_DRIFT": f"{run}.model-drift",
            "BASKETCAST_APP_ID": f"basketcast-{run}",
            "BASKETCAST_REDIS_PREFIX": f"{run}:",
            "BASKETCAST_MODEL_DIR": str(args.model),
            # its own web port unless one is set: /health must be this worker's
            "BASKETCAST_WEB_PORT": os.environ.get("BASKETCAST_WEB_PORT") or str(free_port()),
        }
        self.settings = Settings.from_env(self.env)
        self.started_services: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.cli = [sys.executable, "-m", "stream.cli"]
        self.worker_log: Path | None = None

    # --- steps ---------------------------------------------------------------------------------

    def services_up(self) -> None:
        from stream import services

        s = self.settings
        if services.kafka_answers(s.kafka_bootstrap) and services.redis_answers(s.redis_url):
            print(f"demo: using the services that answer at {s.kafka_bootstrap} and "
                  f"{s.redis_url}")
            return
        if services.docker_engine_answers():
            print("demo: Docker engine found, starting kafka and redis with docker compose")
            subprocess.run(["docker", "compose", "up", "-d", "--wait", "kafka", "redis"],
                           check=True, cwd=REPO_ROOT)
            self.started_services.append("compose")
            return
        paths = services.Paths.from_settings(self.settings)
        for line, name in [(services.start_redis(self.settings, paths), "redis"),
                           (services.start_kafka(self.settings, paths), "kafka")]:
            print(f"demo: {line}")
            if " started " in line:
                self.started_services.append(name)

    def train_if_needed(self) -> None:
        from offline.bundle import BundleError, load_bundle

        bundle = Path(self.args.model)
        if (bundle / "model_card.json").exists():
            try:
                load_bundle(bundle)
            except BundleError as exc:  # e.g. made by an older basketcast: the demo retrains
                print(f"demo: {exc}; retraining")
            else:
                print(f"demo: using the bundle at {bundle} (delete it to retrain)")
                return
        else:
            print(f"demo: no bundle at {bundle}: training on {self.args.data}")
        subprocess.run([*self.cli, "train", "--data", str(self.args.data), "--out", str(bundle)],
                       check=True, env=self.env)

    def start_worker(self, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self.procs.append(subprocess.Popen(
                [*self.cli, "worker", "--model", str(self.args.model)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))
        self.worker_log = log_path
        print(f"demo: worker started (pid {self.procs[-1].pid}, log {log_path})")

    def wait_until_ready(self, timeout: float = WORKER_READY_TIMEOUT_S) -> None:
        """Until the worker's `/health` shows its partitions: its topics exist and have
        leaders, and it consumes (the replay then measures scoring, not start-up)."""
        url = f"http://127.0.0.1:{self.settings.web_port}/health"
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"the worker exited with code {self.procs[0].returncode}; "
                                   f"see {self.worker_log}")
            # HTTPError 503 (an OSError), a half-started server: not ready yet
            with contextlib.suppress(OSError, ValueError, KeyError, HTTPException), \
                    urllib.request.urlopen(url, timeout=2) as response:
                if json.load(response)["consumer_lag"]["partitions"]:
                    print(f"demo: worker ready in {time.monotonic() - started:.1f} s")
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the worker was not ready after {timeout:g} s ({url}); "
                           f"see {self.worker_log}")

    def replay_cmd(self) -> list[str]:
        cmd = [*self.cli, "replay", "--data", str(self.args.data), "--speed", str(self.args.speed)]
        for flag in ("limit", "since", "until"):
            value = getattr(self.args, flag)
            if value:
                cmd += [f"--{flag}", str(value)]
        return cmd

    async def run_live(self, tally: Tally) -> float:
        from rich.console import Console
        from rich.live import Live

        stop = asyncio.Event()
        # A pipe or CI log gets a wide table instead of an 80-column wrap.
        console = Console(width=None if sys.stdout.isatty() else 140)
        with Live(_render(tally, "waiting for events"), console=console,
                  refresh_per_second=4, transient=False) as live:
            watcher = asyncio.create_task(_watch(self.settings, tally, stop, live))
            started = time.monotonic()
            replay = await asyncio.create_subprocess_exec(
                *self.replay_cmd(), env=self.env, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            replay_out, _ = await replay.communicate()
            if replay.returncode != 0:
                stop.set()
                await watcher
                raise RuntimeError(f"replay failed:\n{replay_out.decode(errors='replace')[-2000:]}")
            # Done when the worker's group has consumed every invoice and the output went quiet.
            deadline = time.monotonic() + self.args.drain_timeout
            while time.monotonic() < deadline and self.procs[0].poll() is None:
                quiet = time.monotonic() - tally.last_activity > IDLE_DONE_S
                if quiet and await self._worker_lag() == 0:
                    break
                await asyncio.sleep(0.5)
            stop.set()
            await watcher
        self.replay_output = replay_out.decode(errors="replace").strip().splitlines()[-1:]
        return time.monotonic() - started

    async def _worker_lag(self) -> int | None:
        """Invoices the worker's consumer group has not committed yet (None: unknown)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        s = self.settings
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        probe = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=None)
        await admin.start()
        await probe.start()
        try:
            committed = await admin.list_consumer_group_offsets(s.app_id)
            described = await admin.describe_topics([s.topic_invoices])
            parts = [p["partition"] for p in described[0]["partitions"]]
            if not parts:
                return None
            tps = [TopicPartition(s.topic_invoices, p) for p in parts]
            ends = await probe.end_offsets(tps)
            done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
            return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())
        except Exception:  # noqa: BLE001 - the group may not exist yet
            return None
        finally:
            await probe.stop()
            await admin.close()

    def summary(self, tally: Tally, wall_s: float) -> str:
        span_ms = (tally.last_out_ms or 0) - (tally.first_in_ms or 0)
        throughput = tally.invoices / (span_ms / 1000) if span_ms > 0 else float("nan")
        lat = tally.latencies_ms
        reports = sorted(Path(self.args.model).glob("*.html"))
        lines = [
            "",
            "basketcast demo: summary",
            f"  invoices replayed         {tally.invoices:,}",
            f"  first purchases scored    {len(tally.scored):,}"
            f"  (re-emitted duplicates dropped by event_id: {tally.duplicates})",
            f"  dead letters              {tally.dead_letters:,}",
            f"  guest invoices (skipped)  {tally.guests:,}",
            f"  throughput                {throughput:,.0f} invoices/s"
            " (first produce -> last score)",
            f"  event->score latency      p50 {_percentile(lat, 0.5):,.0f} ms, "
            f"p99 {_percentile(lat, 0.99):,.0f} ms  (replay at speed {self.args.speed}: "
            "includes queueing)" if lat else "  event->score latency      n/a",
            f"  drift events              {tally.drift_events}",
            f"  wall time                 {wall_s:,.1f} s",
            f"  report                    {reports[0] if reports else '(none in the bundle)'}",
        ]
        if self.replay_output:
            lines.append(f"  replay said               {self.replay_output[0]}")
        return "\n".join(lines)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        with contextlib.suppress(Exception):
            asyncio.run(self._drop_namespace())
        from stream import services

        paths = services.Paths.from_settings(self.settings)
        for name in reversed(self.started_services):
            if name == "compose":
                subprocess.run(["docker", "compose", "down"], cwd=REPO_ROOT, check=False)
            elif name == "kafka":
                print(f"demo: {services.stop_kafka(paths)}")
            elif name == "redis":
                print(f"demo: {services.stop_redis(paths)}")

    async def _drop_namespace(self) -> None:
        import redis.asyncio as aioredis

        from stream.topics import delete_topics

        s = self.settings
        # the run's topics, and Faust's own
        await delete_topics(s.kafka_bootstrap, (s.topic_invoices.rsplit(".", 1)[0],
                                                f"{s.app_id}-"))
        client = aioredis.Redis.from_url(s.redis_url)
        try:
            async for key in client.scan_iter(match=f"{s.redis_prefix}*", count=1000):
                await client.unlink(key)
        finally:
            await client.aclose()


def run(args: argparse.Namespace) -> int:
    import logging

    # aiokafka's warnings about transient broker errors it retries: not for the demo's console
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    demo = Demo(args)
    interrupted = False

    def _on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        demo.services_up()
        demo.train_if_needed()
        demo.start_worker(Path(args.log_dir) / "worker.log")
        demo.wait_until_ready()
        tally = Tally()
        wall = asyncio.run(demo.run_live(tally))
        print(demo.summary(tally, wall))
    except KeyboardInterrupt:
        interrupted = True
        print("\ndemo: interrupted, stopping what it started")
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"demo: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.cleanup()
    return 130 if interrupted else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="services + train + worker + replay of the shipped log, live")
    env = os.environ.get
    p.add_argument("--data", type=Path, default=Path(env("BASKETCAST_DEMO_DATA", DEFAULT_DATA)),
                   help="line-level log to replay ($BASKETCAST_DEMO_DATA; default: shipped data)")
    p.add_argument("--model", type=Path, default=Settings.from_env().model_dir,
                   help="bundle to serve, trained first if missing ($BASKETCAST_MODEL_DIR)")
    p.add_argument("--speed", type=float, default=float(env("BASKETCAST_DEMO_SPEED", 0)),
                   help="0: as fast as possible; N: N x real time ($BASKETCAST_DEMO_SPEED)")
    p.add_argument("--limit", type=int, default=env("BASKETCAST_DEMO_LIMIT"),
                   help="replay at most N invoices ($BASKETCAST_DEMO_LIMIT)")
    p.add_argument("--since", default=env("BASKETCAST_DEMO_SINCE"),
                   help="replay invoices from this date ($BASKETCAST_DEMO_SINCE)")
    p.add_argument("--until", default=env("BASKETCAST_DEMO_UNTIL"),
                   help="replay invoices before this date ($BASKETCAST_DEMO_UNTIL)")
    p.add_argument("--drain-timeout", type=float, default=300.0,
                   help="seconds to wait for the worker to finish after the replay")
    p.add_argument("--log-dir", default=".cache/demo", help="where the worker's log goes")
    p.set_defaults(func=run)
