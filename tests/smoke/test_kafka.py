"""aiokafka against the real broker: 4 partitions, 1,000 keyed messages, per-key order kept."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from stream.topics import ensure_topics

pytestmark = pytest.mark.integration

N_MESSAGES = 1_000
N_KEYS = 37


async def test_keyed_messages_keep_their_order_per_key(kafka_bootstrap: str, unique_id: str):
    topic = f"{unique_id}-smoke"
    await ensure_topics(kafka_bootstrap, [topic], 4)  # returns once every partition has a leader
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 4
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(N_MESSAGES):
            key = f"k{i % N_KEYS}".encode()
            await producer.send(topic, key=key, value=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
        group_id=f"{unique_id}-g", enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[bytes, list[int]] = defaultdict(list)
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    received = 0
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while received < N_MESSAGES:
            assert asyncio.get_running_loop().time() < deadline, f"only {received} received"
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    seen[record.key].append(int(record.value))
                    partitions_of[record.key].add(tp.partition)
                    received += 1
    finally:
        await consumer.stop()

    assert received == N_MESSAGES
    assert len(seen) == N_KEYS
    for key, values in seen.items():
        assert values == sorted(values), f"order broken for key {key!r}"
        assert len(partitions_of[key]) == 1
    used = set().union(*partitions_of.values())
    assert len(used) > 1, "all keys landed on one partition: partitioning is not by key"
