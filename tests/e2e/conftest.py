"""Session fixtures of the end-to-end tests: one trained bundle, the full log and its oracle,
and a private Kafka broker + Redis that a test may stop and start without disturbing anyone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from e2e_harness import batch_scores

from stream.services import free_port


@pytest.fixture(scope="session")
def category_of(bundle_dir: Path):
    from offline.bundle import load_bundle

    return load_bundle(bundle_dir).category_of


@pytest.fixture(scope="session")
def full_oracle(bundle_dir: Path, shipped_log: Path,
                tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """`basketcast score` on the whole shipped log."""
    out = tmp_path_factory.mktemp("oracle") / "scores.parquet"
    return batch_scores(bundle_dir, shipped_log, out)


@pytest.fixture(scope="session")
def horizon_days(bundle_dir: Path) -> int:
    import json

    return int(json.loads((bundle_dir / "model_card.json").read_text())["horizon_days"])


@pytest.fixture(scope="session")
def full_expected(log_events: list, category_of, full_oracle: pd.DataFrame,
                  horizon_days: int) -> pd.DataFrame:
    from e2e_harness import expected_state

    return expected_state(log_events, category_of, dict(full_oracle["invoice_id"]),
                          horizon_days)


# --- a private Kafka broker and Redis ----------------------------------------------------------


def _two_free_ports() -> int:
    """A port p with p + 1 free too (the broker's controller listens on p + 1)."""
    from stream.services import port_open

    for _ in range(50):
        p = free_port()
        if p < 65000 and not port_open("127.0.0.1", p + 1):
            return p
    raise RuntimeError("no two consecutive free ports")


class PrivateServices:
    """A Kafka broker and a Redis of our own, started and stopped with stream.services."""

    def __init__(self, root: Path) -> None:
        from stream.services import Paths
        from stream.settings import Settings

        base = Settings.from_env()
        kafka_port, redis_port = _two_free_ports(), free_port()
        self.settings = replace(
            base, kafka_bootstrap=f"127.0.0.1:{kafka_port}",
            redis_url=f"redis://127.0.0.1:{redis_port}/0", services_dir=root,
        )
        self.paths = Paths(root)
        shared = Paths.from_settings(base)
        # the broker's jars: the ones `make services` fetched (no second Maven download)
        if shared.kafka_libs.exists():
            self.paths.kafka.mkdir(parents=True, exist_ok=True)
            self.paths.kafka_libs.symlink_to(shared.kafka_libs, target_is_directory=True)

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url

    def start_kafka(self) -> str:
        from stream.services import start_kafka

        return start_kafka(self.settings, self.paths)

    def stop_kafka(self) -> str:
        from stream.services import stop_kafka

        return stop_kafka(self.paths)

    def start_redis(self) -> str:
        from stream.services import start_redis

        return start_redis(self.settings, self.paths)

    def stop_redis(self) -> str:
        """Stop Redis gracefully after asking it to snapshot on shutdown: the restart then finds
        its data again, like a production Redis with persistence (`start_redis` runs it with
        `--save ""`, which only stops periodic snapshots: the dump is loaded at start)."""
        import redis

        from stream.services import stop_redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            client.config_set("save", "3600 1")
        finally:
            client.close()
        return stop_redis(self.paths)


@pytest.fixture(scope="session")
def private_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServices]:
    """Kafka and Redis on free ports, data under a session tmp dir; stopped at the end."""
    from stream.services import ServiceError

    services = PrivateServices(tmp_path_factory.mktemp("services"))
    try:
        services.start_redis()
        services.start_kafka()
    except ServiceError as exc:
        services.stop_kafka()
        services.stop_redis()
        pytest.fail(f"could not start the private services: {exc}")
    yield services
    services.stop_kafka()
    services.stop_redis()


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's hook
    from e2e_harness import FIGURES

    if FIGURES:
        terminalreporter.section("end-to-end figures")
        for fig in FIGURES:
            terminalreporter.write_line(str(fig))
