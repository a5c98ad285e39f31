"""`stream.topics`: topics exist, a leader for each partition, when `ensure_topics` returns."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.consumer import MAX_OUTPUT_BYTES
from stream.settings import Settings
from stream.topics import _wait_for_leaders, ensure_topics, ensure_worker_topics


async def _describe(bootstrap: str, names: list[str]) -> list[dict]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.describe_topics(names)
    finally:
        await admin.close()


@pytest.mark.integration
async def test_new_topics_are_led_when_created(kafka_bootstrap: str, unique_id: str) -> None:
    names = [f"{unique_id}-a", f"{unique_id}-b"]
    assert await ensure_topics(kafka_bootstrap, names, 3) == names
    described = await _describe(kafka_bootstrap, names)
    assert sorted(t["topic"] for t in described) == names
    for topic in described:
        assert topic["error_code"] == 0
        assert sorted(p["partition"] for p in topic["partitions"]) == [0, 1, 2]
        assert all(p["leader"] >= 0 for p in topic["partitions"])
    assert await ensure_topics(kafka_bootstrap, names, 3) == []  # the second time: nothing


@pytest.mark.integration
async def test_the_worker_topics_have_room_for_the_largest_output(
        kafka_bootstrap: str, unique_id: str) -> None:
    settings = Settings.from_env({
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "BASKETCAST_PARTITIONS": "2",
        **{f"BASKETCAST_TOPIC_{k}": f"{unique_id}-{k.lower()}"
           for k in ("INVOICES", "SCORES", "DLQ", "DRIFT")}})
    created = await ensure_worker_topics(settings)
    assert len(created) == 4
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": None})
             for name in created])
        values = [(res[3], entry[0], entry[1]) for r in responses for res in r.resources
                  for entry in res[4]]
        assert sorted(values) == sorted(
            (name, "max.message.bytes", str(MAX_OUTPUT_BYTES)) for name in created)
    finally:
        await admin.close()


class LeaderlessAdmin:
    """A broker whose new topic never gets a leader for its partition 1."""

    async def describe_topics(self, names: list[str]) -> list[dict]:
        return [{"topic": n, "error_code": 0,
                 "partitions": [{"partition": 0, "leader": 1, "error_code": 0},
                                {"partition": 1, "leader": -1, "error_code": 5}]}
                for n in names]


async def test_waiting_for_a_leader_that_never_comes_names_the_topic() -> None:
    with pytest.raises(TimeoutError, match="without a leader after 0s: lonely"):
        await _wait_for_leaders(LeaderlessAdmin(), ["lonely"], timeout=0.2)  # type: ignore[arg-type]
