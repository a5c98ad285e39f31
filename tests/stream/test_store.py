"""The customers' store's own round trips on a real Redis (the script is covered by the
processor and end-to-end tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from stream.store import CustomerStore, _drainable

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(redis_url: str, unique_id: str) -> AsyncIterator[CustomerStore]:
    client = aioredis.from_url(redis_url)
    yield CustomerStore(client, unique_id)
    keys = [k async for k in client.scan_iter(match=f"{unique_id}:*", count=10_000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_replies_are_drained_from_the_hiredis_reader(store: CustomerStore) -> None:
    """The fast path is the one taken with the installed redis-py (a redis-py that moves its
    parser's reader would silently fall back to ~2 us more per reply)."""
    pool = store.redis.connection_pool
    conn = await pool.get_connection()
    try:
        assert _drainable(conn) is not None
    finally:
        await pool.release(conn)


async def test_thousands_of_replies_come_back_in_order(store: CustomerStore) -> None:
    key = f"{store.prefix}counter"
    replies = await store._round_trip([("INCR", key)] * 20_000)  # many socket reads
    assert replies == list(range(1, 20_001))


async def test_an_error_reply_is_raised_once_every_reply_was_read(store: CustomerStore) -> None:
    key = f"{store.prefix}plain"
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await store._round_trip([("SET", key, "1"), ("HGET", key, "f"), ("APPEND", key, "2")])
    # the connection went back to the pool with nothing unread: the next reply is its own
    assert await store._round_trip([("GET", key)]) == [b"12"]
