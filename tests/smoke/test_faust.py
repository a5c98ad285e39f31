"""faust-streaming as a real worker process against the real broker (not test_context)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("echo_app.py")
N = 50


async def test_faust_worker_consumes_and_produces(
    kafka_bootstrap: str, unique_id: str, tmp_path: Path
):
    source, sink = f"{unique_id}-in", f"{unique_id}-out"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=2, replication_factor=1) for t in (source, sink)]
        )
    finally:
        await admin.close()

    env = {
        **os.environ,
        "SMOKE_APP_ID": unique_id, "SMOKE_BOOTSTRAP": kafka_bootstrap,
        "SMOKE_SOURCE": source, "SMOKE_SINK": sink,
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, str(APP), "--datadir", str(tmp_path / "faust-data"),
             "worker", "--loglevel", "info"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(N):
                await producer.send(source, key=f"k{i % 5}".encode(), value=f"msg-{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            sink, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
            group_id=f"{unique_id}-reader",
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 90
            while len(got) < N:
                if worker.poll() is not None:
                    pytest.fail(f"worker exited early:\n{log_path.read_text()[-3000:]}")
                if loop.time() > deadline:
                    tail = log_path.read_text()[-3000:]
                    pytest.fail(f"{len(got)}/{N} outputs; worker log:\n{tail}")
                batches = await consumer.getmany(timeout_ms=1000)
                got.extend(r.value for records in batches.values() for r in records)
        finally:
            await consumer.stop()
        assert sorted(got) == sorted(f"MSG-{i}".encode() for i in range(N))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
