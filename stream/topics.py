"""Create the worker's topics up front (a new consumer group then reads them from the start)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

if TYPE_CHECKING:
    from stream.settings import Settings

log = logging.getLogger(__name__)

#: How long `ensure_topics` waits for the partitions of new topics to have a leader.
LEADER_TIMEOUT_S = 30.0


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic (e.g. an invalid topic config)."""


async def ensure_topics(bootstrap: str, names: list[str], partitions: int,
                        configs: dict[str, str] | None = None) -> list[str]:
    """Create the missing topics of `names` with `partitions` partitions (and topic `configs`),
    and wait until every partition of `names` has a leader; returns the created.

    A topic the broker refuses raises `TopicCreationError` with the broker's reason (the
    admin client returns such errors instead of raising them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        unique = list(dict.fromkeys(names))
        existing = set(await admin.list_topics())
        missing = [n for n in unique if n not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(n, num_partitions=partitions, replication_factor=1,
                          topic_configs=configs or {})
                 for n in missing]
            )
            refused = []
            for name, code, message, *_ in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code != TopicAlreadyExistsError.errno:  # another worker won the race
                    refused.append(f"{name}: {message or f'error {code}'}")
            if refused:
                raise TopicCreationError("the broker refused to create " + "; ".join(refused))
            if created:
                log.info("event=topics_created topics=%s partitions=%d", ",".join(created),
                         partitions)
        # Clients that use a topic before its partitions have a leader log errors ("not found
        # in cluster metadata", NotLeaderForPartition) and retry; another process may have
        # created these topics a moment ago.
        await _wait_for_leaders(admin, unique)
        return created
    finally:
        await admin.close()


async def ensure_worker_topics(settings: Settings) -> list[str]:
    """The worker's four topics, with room for its largest output record."""
    from stream.consumer import MAX_OUTPUT_BYTES

    return await ensure_topics(
        settings.kafka_bootstrap,
        settings.worker_topics,
        settings.partitions,
        {"max.message.bytes": str(MAX_OUTPUT_BYTES)},
    )


async def delete_topics(bootstrap: str, prefixes: str | tuple[str, ...]) -> list[str]:
    """Delete every topic whose name starts with one of `prefixes` (a run's namespace);
    returns the deleted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str],
                            timeout: float = LEADER_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        waiting = [t["topic"] for t in await admin.describe_topics(names)
                   if t["error_code"] or not t["partitions"]
                   or any(p["error_code"] or p["leader"] < 0 for p in t["partitions"])]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without a leader after {timeout:g} s: "
                               f"{', '.join(waiting)}")
        await asyncio.sleep(0.05)
