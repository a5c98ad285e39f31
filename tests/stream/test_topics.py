"""`stream.topics`: topics exist, a leader for each partition, when `ensure_topics` returns."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.consumer import MAX_OUTPUT_BYTES
from stream.settings import Settings
from stream.topics import (
    TopicCreationError,
    _wait_for_leaders,
    delete_topics,
    ensure_topics,
    ensure_worker_topics,
)


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


@pytest.mark.integration
async def test_new_topics_are_led_when_created(kafka_bootstrap: str, unique_id: str) -> None:
    names = [f"{unique_id}-a", f"{unique_id}-b"]
    try:
        assert await ensure_topics(kafka_bootstrap, names, 3) == names
        admin = await _admin(kafka_bootstrap)
        try:
            described = await admin.describe_topics(names)
        finally:
            await admin.close()
        assert sorted(t["topic"] for t in described) == names
        for topic in described:
            assert topic["error_code"] == 0
            assert sorted(p["partition"] for p in topic["partitions"]) == [0, 1, 2]
            assert all(p["leader"] >= 0 for p in topic["partitions"])
        assert await ensure_topics(kafka_bootstrap, names, 3) == []  # the second time: nothing
    finally:
        await delete_topics(kafka_bootstrap, unique_id)


@pytest.mark.integration
async def test_the_worker_topics_have_room_for_the_largest_output(
        kafka_bootstrap: str, unique_id: str) -> None:
    settings = Settings.from_env({
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "BASKETCAST_PARTITIONS": "2",
        **{f"BASKETCAST_TOPIC_{k}": f"{unique_id}-{k.lower()}"
           for k in ("INVOICES", "SCORES", "DLQ", "DRIFT")}})
    created = await ensure_worker_topics(settings)
    try:
        assert len(created) == 4
        admin = await _admin(kafka_bootstrap)
        try:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": None})
                 for name in created])
        finally:
            await admin.close()
        values = [(res[3], entry[0], entry[1]) for r in responses for res in r.resources
                  for entry in res[4]]
        assert sorted(values) == sorted(
            (name, "max.message.bytes", str(MAX_OUTPUT_BYTES)) for name in created)
    finally:
        await delete_topics(kafka_bootstrap, unique_id)


@pytest.mark.integration
async def test_a_refused_topic_names_the_broker_s_reason(kafka_bootstrap: str,
                                                       unique_id: str) -> None:
    """The broker's answer, not a topic it would auto-create later with its defaults."""
    name = f"{unique_id}-bad"
    with pytest.raises(TopicCreationError, match=f"{name}: .*max.message.bytes"):
        await ensure_topics(kafka_bootstrap, [name], 2, {"max.message.bytes": "lots"})
    admin = await _admin(kafka_bootstrap)
    try:
        assert name not in await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.integration
async def test_a_run_s_topics_are_deleted_by_prefix(kafka_bootstrap: str,
                                                    unique_id: str) -> None:
    mine, other = [f"{unique_id}.a", f"{unique_id}-ops-b"], f"x{unique_id}"
    await ensure_topics(kafka_bootstrap, [*mine, other], 1)
    try:
        deleted = await delete_topics(kafka_bootstrap, (f"{unique_id}.", f"{unique_id}-"))
        assert sorted(deleted) == sorted(mine)
        admin = await _admin(kafka_bootstrap)
        try:  # the broker's metadata may list a deleted topic for a moment
            deadline = time.monotonic() + 10
            while (left := set(await admin.list_topics())) & set(mine) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            await admin.close()
        assert other in left and not left & set(mine)
    finally:
        await delete_topics(kafka_bootstrap, other)


class SlowLeaderAdmin:
    """A broker whose topics get a leader for partition 1 only after `late` descriptions;
    before that the topic may even be unknown (error 3) or listed without partitions."""

    def __init__(self, late: int) -> None:
        self.late = late
        self.calls = 0

    async def describe_topics(self, names: list[str]) -> list[dict]:
        self.calls += 1
        if self.calls == 1:
            return [{"topic": n, "error_code": 3, "partitions": []} for n in names]
        if self.calls == 2:
            return [{"topic": n, "error_code": 0, "partitions": []} for n in names]
        leader = 1 if self.calls > self.late else -1
        return [{"topic": n, "error_code": 0,
                 "partitions": [{"partition": 0, "leader": 1, "error_code": 0},
                                {"partition": 1, "leader": leader,
                                 "error_code": 0 if leader > 0 else 5}]}
                for n in names]


async def test_waiting_ends_when_every_partition_has_a_leader() -> None:
    admin = SlowLeaderAdmin(late=5)
    await _wait_for_leaders(admin, ["t"], timeout=10)  # type: ignore[arg-type]
    assert admin.calls == 6


async def test_waiting_for_a_leader_that_never_comes_names_the_topic() -> None:
    with pytest.raises(TimeoutError, match="without a leader after 0.2 s: lonely"):
        await _wait_for_leaders(SlowLeaderAdmin(late=10**9), ["lonely"],  # type: ignore[arg-type]
                                timeout=0.2)


async def test_ensure_topics_returns_only_once_they_are_led(monkeypatch) -> None:
    class FakeAdmin(SlowLeaderAdmin):
        def __init__(self, **_: object) -> None:
            super().__init__(late=4)
            made.append(self)

        async def start(self) -> None: ...

        async def close(self) -> None: ...

        async def list_topics(self) -> list[str]:
            return []

        async def create_topics(self, topics: list) -> object:
            return type("Response", (), {"topic_errors": [(t.name, 0, None) for t in topics]})

    made: list[FakeAdmin] = []
    monkeypatch.setattr("stream.topics.AIOKafkaAdminClient", FakeAdmin)
    assert await ensure_topics("nowhere:9092", ["t1", "t2"], 2) == ["t1", "t2"]
    assert made[0].calls == 5
