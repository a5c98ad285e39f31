"""Shared fixtures: a real Kafka broker and a real Redis for integration tests.

Where a Docker engine answers, testcontainers starts them (Kafka in KRaft mode, Redis).
Otherwise the tests use the addresses in `KAFKA_BOOTSTRAP_SERVERS` / `REDIS_URL` (started by
`make services`). If nothing answers the tests are skipped locally, and FAIL when `CI=true`:
in CI a missing service is an error, never a silent skip.

Isolation: every test gets `unique_id`; use it in topic names, consumer groups and as the Redis
key prefix so tests never see each other's data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from stream.services import docker_engine_answers, kafka_answers, redis_answers
from stream.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[1]


def _missing(service: str, address: str) -> None:
    message = (
        f"{service} does not answer at {address} and no Docker engine is available; "
        "start the local services with `make services`"
    )
    if IN_CI:
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def _containers() -> Iterator[ExitStack | None]:
    use_docker = os.environ.get("BASKETCAST_TEST_USE_DOCKER", "auto")
    if use_docker == "never" or not docker_engine_answers():
        yield None
        return
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def kafka_bootstrap(_containers: ExitStack | None) -> str:
    """Bootstrap address of a Kafka broker that answers a metadata request."""
    if _containers is not None:
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
        kafka = _containers.enter_context(container)
        return kafka.get_bootstrap_server()
    address = Settings.from_env().kafka_bootstrap
    if not kafka_answers(address):
        _missing("Kafka", address)
    return address


@pytest.fixture(scope="session")
def redis_url(_containers: ExitStack | None) -> str:
    """URL of a Redis server that answers PING."""
    if _containers is not None:
        from testcontainers.community.redis import RedisContainer

        redis = _containers.enter_context(RedisContainer("redis:7"))
        host = redis.get_container_host_ip()
        return f"redis://{host}:{redis.get_exposed_port(6379)}/0"
    url = Settings.from_env().redis_url
    if not redis_answers(url):
        _missing("Redis", url)
    return url


@pytest.fixture
def unique_id(request: pytest.FixtureRequest) -> str:
    """A short id unique to this test: for topic names, group ids and Redis key prefixes."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


def shipped_log_path() -> Path:
    """The shipped log: $BASKETCAST_DATA, else `../shared/data/` beside the repository."""
    given = os.environ.get("BASKETCAST_DATA")
    return Path(given) if given else ROOT.parent / "shared" / "data" / "online_retail_ii.parquet"


@pytest.fixture(scope="session")
def shipped_log() -> Path:
    path = shipped_log_path()
    if not path.exists():
        pytest.fail(f"the shipped log is missing: {path} (set BASKETCAST_DATA)")
    return path


@pytest.fixture(scope="session")
def log_events(shipped_log: Path) -> list:
    """Every invoice of the shipped log as an invoice event, in time order (read once)."""
    from stream.replay import load_events

    return load_events(shipped_log)


def _fingerprint(data: Path) -> str:
    """Data + training code: a cached bundle is reused only while both are unchanged."""
    h = hashlib.sha256(data.read_bytes())
    for src in sorted([*(ROOT / "offline").glob("*.py"), *(ROOT / "schemas").glob("*.py")]):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def bundle_dir(shipped_log: Path) -> Path:
    """A real bundle trained on the shipped log: $BASKETCAST_TEST_BUNDLE, else trained once and
    cached under .cache/e2e/ (keyed by the data and the training code)."""
    given = os.environ.get("BASKETCAST_TEST_BUNDLE")
    if given:
        return Path(given)
    cache = ROOT / ".cache" / "e2e"
    out = cache / f"bundle-{_fingerprint(shipped_log)}"
    if (out / "model_card.json").exists():
        return out
    tmp = cache / f"training-{uuid.uuid4().hex[:8]}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "stream.cli", "train", "--data", str(shipped_log), "--out",
         str(tmp), "--no-progress"],
        check=True, cwd=ROOT, timeout=1800, capture_output=True,
    )
    try:
        tmp.rename(out)
    except OSError:  # another session finished first: use its bundle
        shutil.rmtree(tmp, ignore_errors=True)
    return out
