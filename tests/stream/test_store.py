"""The customers' store's own round trips on a real Redis (the script is covered by the
processor and end-to-end tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import hiredis
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

import stream.store as store_module
from stream.store import CustomerStore, _drainable

pytestmark = pytest.mark.integration


@pytest.fixture(params=["drained", "one_by_one"])
async def store(request: pytest.FixtureRequest, redis_url: str, unique_id: str,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CustomerStore]:
    """A store whose replies are drained from hiredis's reader, or read one by one (the
    fallback for a redis-py that keeps its reader elsewhere)."""
    if request.param == "one_by_one":
        monkeypatch.setattr(store_module, "_drainable", lambda conn: None)
    client = aioredis.from_url(redis_url)
    yield CustomerStore(client, unique_id)
    keys = [k async for k in client.scan_iter(match=f"{unique_id}:*", count=10_000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_replies_are_drained_from_the_hiredis_reader(redis_url: str) -> None:
    """The fast path is the one taken with the installed redis-py (a redis-py that moves its
    parser's reader would silently fall back to `read_response` for every reply)."""
    client = aioredis.from_url(redis_url)
    conn = await client.connection_pool.get_connection()
    try:
        assert _drainable(conn) is not None
    finally:
        await client.connection_pool.release(conn)
        await client.aclose()


async def test_thousands_of_replies_come_back_in_order(store: CustomerStore) -> None:
    key = f"{store.prefix}counter"
    replies = await store._round_trip([("INCR", key)] * 20_000)  # many socket reads
    assert replies == list(range(1, 20_001))


async def test_an_error_reply_is_raised_once_every_reply_was_read(store: CustomerStore) -> None:
    key = f"{store.prefix}plain"
    [client_id] = await store._round_trip([("CLIENT", "ID")])
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await store._round_trip([("SET", key, "1"), ("HGET", key, "f"), ("APPEND", key, "2")])
    # the same connection went back to the pool, nothing left unread: the next reply is its own
    assert await store._round_trip([("GET", key), ("CLIENT", "ID")]) == [b"12", client_id]


async def test_a_push_message_is_not_taken_for_a_reply(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A RESP3 push (e.g. a maintenance notice) between replies is handed to redis-py's
    handler, not counted as the next command's reply."""
    assert store_module._PUSH is not None  # hiredis >= 3.2 (pyproject)
    client = aioredis.from_url(redis_url)
    pool = client.connection_pool
    conn = await pool.get_connection()
    pushed: list[object] = []
    try:
        reader, _, _, _ = _drainable(conn)  # type: ignore[misc]
        reader.feed(b">2\r\n$6\r\nMOVING\r\n:1\r\n")  # arrives before the replies

        async def on_push(message: object) -> None:
            pushed.append(message)

        monkeypatch.setattr(conn._parser, "handle_push_response", on_push)
        await conn.send_packed_command(hiredis.pack_command(("PING",)))
        replies: list[object] = []
        await store_module._read_replies(conn, 1, replies)
    finally:
        await pool.release(conn)
        await client.aclose()
    assert replies == [b"PONG"] and len(pushed) == 1


async def test_a_prefix_is_claimed_for_one_state_format(store: CustomerStore) -> None:
    await store.check_format()  # a new prefix: claimed for this version's format
    await store.check_format()  # and accepted again
    assert await store.redis.get(f"{store.prefix}state_format") == b"2"
    await store.redis.set(f"{store.prefix}state_format", "1")
    with pytest.raises(store_module.StateFormatError, match="format 1.*BASKETCAST_REDIS_PREFIX"):
        await store.check_format()


async def test_state_from_before_the_format_key_is_refused(store: CustomerStore) -> None:
    """State written before the format key (money as float strings) has a watermark."""
    await store.register({}, 1.0e9)
    with pytest.raises(store_module.StateFormatError, match="format 1"):
        await store.check_format()


async def test_packed_script_calls_name_the_script_redis_loads(store: CustomerStore) -> None:
    """The native reader packs its calls with `LUA_APPLY_SHA`; the store sends them as they
    are only while Redis knows the script by that name."""
    assert await store.load_script() == store_module.LUA_APPLY_SHA


async def test_a_packed_call_is_sent_as_is_and_a_scored_op_is_packed_again(
    store: CustomerStore,
) -> None:
    await store.load_script()
    plain = store_module.InvoiceOp("c1", "i1", 1.5, "P", 2.0, 1, {3: 2.0})
    packed = hiredis.pack_command(("EVALSHA", store_module.LUA_APPLY_SHA, 3,
                                   *store.keys("c2"), *plain.argv()))
    # the packed call names customer c2: sent as is, it changes c2, not c1
    as_packed = store_module.InvoiceOp("c1", "i1", 1.5, "P", 2.0, 1, {3: 2.0}, packed=packed)
    assert [a.status for a in await store.apply([as_packed])] == ["applied"]
    assert await store.customer("c1") is None and await store.customer("c2") is not None
    # with a score attached, the op's own call is packed (the packed one has no score)
    scored = store_module.InvoiceOp("c3", "i3", 1.5, "P", 2.0, 1, {3: 2.0}, score_json="{}",
                                    due=9.0, packed=packed)
    assert [a.status for a in await store.apply([scored])] == ["first"]
