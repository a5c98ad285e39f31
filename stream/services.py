"""Local Kafka and Redis for machines without a Docker engine.

`basketcast services up|down|status` (and `make services`, `make services-down`,
`make services-status`) start, stop and report:

- a real Apache Kafka 4.x broker in KRaft mode (single node, broker + controller), its jars
  resolved from Maven Central by `services/pom.xml` into `$BASKETCAST_SERVICES_DIR/kafka/libs`
  (fetched once, re-fetched only when the pom changes);
- Debian's `redis-server` (installed with apt-get when missing), no persistence.

Addresses come from `KAFKA_BOOTSTRAP_SERVERS` and `REDIS_URL`. A port already answered by a
Kafka broker or a Redis is used as it is and never stopped: `down` stops only the processes
whose pid files `up` wrote. `up` is idempotent and returns only once both services answer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from stream.settings import Settings

log = logging.getLogger("basketcast.services")

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES_SRC = REPO_ROOT / "services"
KAFKA_READY_TIMEOUT_S = float(os.environ.get("BASKETCAST_KAFKA_READY_TIMEOUT", "120"))
REDIS_READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 40.0


class ServiceError(RuntimeError):
    """A service could not be started, with what the operator needs to know."""


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> Paths:
        root = settings.services_dir
        return cls(root if root.is_absolute() else REPO_ROOT / root)

    @property
    def kafka(self) -> Path:
        return self.root / "kafka"

    @property
    def kafka_libs(self) -> Path:
        return self.kafka / "libs"

    @property
    def kafka_data(self) -> Path:
        return self.kafka / "data"

    @property
    def kafka_logs(self) -> Path:
        return self.kafka / "logs"

    @property
    def kafka_pid(self) -> Path:
        return self.root / "run" / "kafka.pid"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def redis_pid(self) -> Path:
        return self.root / "run" / "redis.pid"


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """`"127.0.0.1:9092"` or `"kafka://h:p"` -> ("127.0.0.1", 9092); the first of a list.

    >>> host_port("kafka://localhost:29092,other:9092", 9092)
    ('localhost', 29092)
    >>> host_port("redis://127.0.0.1:6380/0", 6379)
    ('127.0.0.1', 6380)
    """
    first = address.split(",")[0].strip()
    if "://" not in first:
        first = "tcp://" + first
    parsed = urlparse(first)
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A zombie (our own exited child) is not alive.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if state == "Z":
            return None
    return pid


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def docker_engine_answers() -> bool:
    """True when a Docker engine answers a ping (then testcontainers / compose can be used)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no"
        return False


# --- Kafka -------------------------------------------------------------------------------------


def kafka_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a broker answers a metadata request at `bootstrap`."""
    from aiokafka import AIOKafkaClient

    async def probe() -> bool:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
            return bool(client.cluster.brokers())
        except Exception:  # noqa: BLE001 - any failure means "not answering yet"
            return False
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    host, port = host_port(bootstrap, 9092)
    if not port_open(host, port):
        return False
    return asyncio.run(probe())


def kafka_version(paths: Paths) -> str | None:
    for jar in sorted(paths.kafka_libs.glob("kafka_2.13-*.jar")):
        return jar.stem.removeprefix("kafka_2.13-")
    return None


def fetch_kafka_jars(paths: Paths) -> None:
    """Resolve the broker's jars from Maven Central once; again only when the pom changed."""
    pom = SERVICES_SRC / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    marker = paths.kafka_libs / f".pom-{digest}"
    if marker.exists():
        return
    if shutil.which("mvn") is None:
        raise ServiceError("Maven (mvn) is needed to fetch the Kafka jars: apt-get install maven")
    log.info("event=fetch_kafka_jars dest=%s", paths.kafka_libs)
    if paths.kafka_libs.exists():
        shutil.rmtree(paths.kafka_libs)
    paths.kafka_libs.mkdir(parents=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        f"-DoutputDirectory={paths.kafka_libs}", "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(
            "mvn could not fetch the Kafka jars:\n" + (result.stdout + result.stderr)[-3000:]
        )
    marker.touch()


def _render_server_properties(paths: Paths, port: int) -> Path:
    template = (SERVICES_SRC / "server.properties.in").read_text()
    rendered = (
        template.replace("@PORT@", str(port))
        .replace("@CONTROLLER_PORT@", str(port + 1))
        .replace("@DATA_DIR@", str(paths.kafka_data))
    )
    target = paths.kafka / "server.properties"
    target.write_text(rendered)
    return target


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home) / "bin" / "java" if java_home else shutil.which("java")
    if not java:
        raise ServiceError("the Kafka broker needs Java 17+: apt-get install openjdk-17-jre")
    return str(java)


def _java_base(paths: Paths) -> list[str]:
    return [
        _java(),
        "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile=file:{SERVICES_SRC / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={paths.kafka_logs}",
        "-cp", f"{paths.kafka_libs}/*",
    ]


def _format_storage(paths: Paths, config: Path) -> None:
    if (paths.kafka_data / "meta.properties").exists():
        return
    paths.kafka_data.mkdir(parents=True, exist_ok=True)
    cluster_id = "-"
    while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid: "-..." reads as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    cmd = [*_java_base(paths), "kafka.tools.StorageTool", "format", "-t", cluster_id,
           "-c", str(config), "--ignore-formatted"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError("formatting Kafka storage failed:\n" + result.stdout + result.stderr)


def start_kafka(settings: Settings, paths: Paths) -> str:
    bootstrap = settings.kafka_bootstrap
    host, port = host_port(bootstrap, 9092)
    if _pid_alive(paths.kafka_pid) and kafka_answers(bootstrap):
        return f"kafka already running (pid {_pid_alive(paths.kafka_pid)}) on {host}:{port}"
    if not _pid_alive(paths.kafka_pid) and port_open(host, port):
        if kafka_answers(bootstrap):
            return f"kafka: using the broker that already answers on {host}:{port}"
        raise ServiceError(f"port {host}:{port} is taken by something that is not a Kafka broker")
    fetch_kafka_jars(paths)
    paths.kafka_logs.mkdir(parents=True, exist_ok=True)
    paths.kafka_pid.parent.mkdir(parents=True, exist_ok=True)
    config = _render_server_properties(paths, port)
    _format_storage(paths, config)
    if not _pid_alive(paths.kafka_pid):
        out = open(paths.kafka_logs / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [*_java_base(paths), "kafka.Kafka", str(config)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=paths.kafka,
        )
        paths.kafka_pid.write_text(str(proc.pid))
    deadline = time.monotonic() + KAFKA_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _pid_alive(paths.kafka_pid):
            break
        if kafka_answers(bootstrap, timeout=3.0):
            version = kafka_version(paths)
            return f"kafka {version} started (pid {_pid_alive(paths.kafka_pid)}) on {host}:{port}"
        time.sleep(0.5)
    raise ServiceError(
        f"Kafka did not answer on {host}:{port} within {KAFKA_READY_TIMEOUT_S:.0f}s.\n"
        f"--- {paths.kafka_logs / 'server.log'} (last lines) ---\n"
        f"{_tail(paths.kafka_logs / 'server.log')}\n"
        f"--- {paths.kafka_logs / 'stdout.log'} (last lines) ---\n"
        f"{_tail(paths.kafka_logs / 'stdout.log', 15)}"
    )


# --- Redis -------------------------------------------------------------------------------------


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return False


def _redis_server() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise ServiceError("redis-server is missing and apt-get is not available to install it")
    log.info("event=install_redis via=apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    return "/usr/bin/redis-server"


def start_redis(settings: Settings, paths: Paths) -> str:
    url = settings.redis_url
    host, port = host_port(url, 6379)
    if redis_answers(url):
        pid = _pid_alive(paths.redis_pid)
        return f"redis already running{f' (pid {pid})' if pid else ''} on {host}:{port}"
    if port_open(host, port):
        raise ServiceError(f"port {host}:{port} is taken by something that is not Redis")
    server = _redis_server()
    paths.redis_dir.mkdir(parents=True, exist_ok=True)
    paths.redis_pid.parent.mkdir(parents=True, exist_ok=True)
    log_file = paths.redis_dir / "redis.log"
    cmd = [
        server, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no",
        "--daemonize", "yes", "--pidfile", str(paths.redis_pid), "--logfile", str(log_file),
        "--dir", str(paths.redis_dir),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"redis-server failed to start:\n{result.stderr}\n{_tail(log_file)}")
    deadline = time.monotonic() + REDIS_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if redis_answers(url):
            return f"redis started (pid {_pid_alive(paths.redis_pid)}) on {host}:{port}"
        time.sleep(0.1)
    raise ServiceError(f"Redis did not answer on {host}:{port}:\n{_tail(log_file)}")


# --- stop / status -----------------------------------------------------------------------------


def _stop(name: str, pid_file: Path) -> str:
    pid = _pid_alive(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return f"{name}: not started by basketcast, nothing to stop"
    # The broker runs in its own session: signal the whole group so no child is left behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _pid_alive(pid_file):
        time.sleep(0.2)
    if _pid_alive(pid_file):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    pid_file.unlink(missing_ok=True)
    return f"{name}: stopped (pid {pid})"


def stop_kafka(paths: Paths) -> str:
    return _stop("kafka", paths.kafka_pid)


def stop_redis(paths: Paths) -> str:
    return _stop("redis", paths.redis_pid)


def status(settings: Settings, paths: Paths) -> list[str]:
    lines = []
    k_host, k_port = host_port(settings.kafka_bootstrap, 9092)
    k_pid = _pid_alive(paths.kafka_pid)
    k_ok = kafka_answers(settings.kafka_bootstrap)
    owner = f"pid {k_pid}, started by basketcast" if k_pid else "not started by basketcast"
    lines.append(
        f"kafka {kafka_version(paths) or '?'}: {'up' if k_ok else 'DOWN'} on {k_host}:{k_port}"
        f" ({owner}; logs {paths.kafka_logs})"
    )
    r_host, r_port = host_port(settings.redis_url, 6379)
    r_pid = _pid_alive(paths.redis_pid)
    r_ok = redis_answers(settings.redis_url)
    owner = f"pid {r_pid}, started by basketcast" if r_pid else "not started by basketcast"
    lines.append(f"redis: {'up' if r_ok else 'DOWN'} on {r_host}:{r_port} ({owner})")
    return lines


def up(settings: Settings | None = None) -> list[str]:
    settings = settings or Settings.from_env()
    paths = Paths.from_settings(settings)
    return [start_redis(settings, paths), start_kafka(settings, paths)]


def down(settings: Settings | None = None, purge: bool = False) -> list[str]:
    settings = settings or Settings.from_env()
    paths = Paths.from_settings(settings)
    out = [stop_kafka(paths), stop_redis(paths)]
    if purge:
        shutil.rmtree(paths.kafka_data, ignore_errors=True)
        out.append(f"kafka data removed ({paths.kafka_data})")
    return out


# --- CLI ---------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        if args.action == "up":
            lines = up(settings)
        elif args.action == "down":
            lines = down(settings, purge=args.purge)
        else:
            lines = status(settings, Paths.from_settings(settings))
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    if args.action == "status" and any("DOWN" in line for line in lines):
        return 3
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("services", help="start, stop or show the local Kafka broker and Redis")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--purge", action="store_true", help="with down: delete the broker's data")
    p.set_defaults(func=_run)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m stream.services")
    register(parser.add_subparsers(dest="command", required=True))
    sys.exit(_run(parser.parse_args(["services", *sys.argv[1:]])))
