from __future__ import annotations

import pytest

from stream.services import Paths, _render_server_properties, host_port, kafka_answers, status
from stream.settings import Settings


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("kafka://broker:29092", ("broker", 29092)),
        ("a:1,b:2", ("a", 1)),
        ("redis://localhost/0", ("localhost", 6379)),
    ],
)
def test_host_port(address: str, expected: tuple[str, int]):
    assert host_port(address, 6379 if address.startswith("redis") else 9092) == expected


def test_server_properties_are_kraft_single_node(tmp_path):
    paths = Paths(tmp_path)
    paths.kafka.mkdir(parents=True)
    props = _render_server_properties(paths, 19092).read_text()
    assert "process.roles=broker,controller" in props
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in props
    assert f"log.dirs={paths.kafka_data}" in props
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "share.coordinator.state.topic.replication.factor"):
        assert f"{key}=1" in props


def test_nothing_answers_on_a_closed_port():
    assert kafka_answers("127.0.0.1:1", timeout=1) is False


@pytest.mark.integration
def test_status_reports_both_services_up(kafka_bootstrap: str, redis_url: str):
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url}
    settings = Settings.from_env(env)
    lines = status(settings, Paths.from_settings(settings))
    assert len(lines) == 2
    assert all(": up on " in line for line in lines), lines


def test_cluster_id_never_starts_with_a_dash(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A random id starting with "-" (1 in 64) was read by kafka-storage as an option."""
    import subprocess
    import uuid

    import stream.services as services

    ids = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(services.uuid, "uuid4", lambda: next(ids))
    monkeypatch.setattr(services, "_java", lambda: "java")
    seen: list[list[str]] = []

    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(services.subprocess, "run", run)
    services._format_storage(Paths(tmp_path), tmp_path / "server.properties")
    cluster_id = seen[0][seen[0].index("-t") + 1]
    assert cluster_id and not cluster_id.startswith("-"), cluster_id
    assert cluster_id.startswith("E")  # the second id: the first ("-A...") was drawn again
