"""Create the worker's topics up front (a new consumer group then reads them from the start)."""

from __future__ import annotations

import logging
from contextlib import suppress

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


async def ensure_topics(bootstrap: str, names: list[str], partitions: int,
                        configs: dict[str, str] | None = None) -> list[str]:
    """Create the missing topics of `names` with `partitions` partitions (and topic `configs`);
    returns the created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            with suppress(TopicAlreadyExistsError):  # another worker won the race
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1,
                              topic_configs=configs or {})
                     for n in missing]
                )
            log.info("event=topics_created topics=%s partitions=%d", ",".join(missing), partitions)
        return missing
    finally:
        await admin.close()
