"""Customer state in Redis: one hash per customer, changed by one Lua script per invoice.

Keys share the hash tag `{<customer id>}` so a customer's keys live in one Redis Cluster slot:

- `{prefix}cust:{<id>}`      hash: orders, cancellations, adjustments, spend_micros, items,
  first_seen, last_seen (epoch s); at the first purchase fp_invoice, fp_at, fp_due, score
  (the emitted `CustomerScored` JSON), features (JSON); after it h_orders, h_spend_micros,
  h_items
  (what happened within the horizon: the label the online learner will use)
- `{prefix}cust:{<id>}:inv`  hash: applied invoice id -> event time (the at-most-once guard)
- `{prefix}cust:{<id>}:cat_micros`  hash: product category -> net spend (micro-units)
- `{prefix}maturation`       sorted set: customer id scored by fp_at + horizon (epoch s)
- `{prefix}watermark`        sorted set: member `event_time`, the largest event time applied,
  and `partition:<n>`, the largest event time read from input partition n; the learner
  matures labels up to the smallest partition watermark (a partition read behind the others
  may still hold invoices that belong to an older label)

Money (spend, h_spend, category spend) is kept in integer micro-units (`MICROS` per unit of
the log's currency): sums of integers are exact and do not depend on the order the invoices
arrive in, and Redis adds them ~20 % cheaper than floats (HINCRBYFLOAT parses and prints
long doubles). `CustomerStore.customer` gives them back as floats. An invoice's spend and each
category's must lie within +-`MAX_INVOICE_MONEY` (the processor dead-letters the rest): a
customer's 64-bit totals then hold over 9,000 such invoices. Beyond that the script keeps
nothing of the invoice and answers `overflow`, which the processor dead-letters too.

`{prefix}state_format` says how the state is written (`STATE_FORMAT`). The worker refuses a
prefix written by another format (`CustomerStore.check_format`) instead of mixing the two: state
from before the micro-units has a watermark and no format key.

The maturation set and the watermark are outside the customers' slots, so they are written by
plain idempotent commands (ZADD NX / ZADD GT) after the script, never inside it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

#: hiredis's type for RESP3 push messages (hiredis >= 3.2)
_PUSH: type | None = getattr(hiredis, "PushNotification", None)
#: money's micro-units per unit of currency in the stored state (see the module docstring)
MICROS = 1_000_000
#: the largest net spend (or category spend) of one invoice the state takes, in currency units
MAX_INVOICE_MONEY = 1e9
#: how this version writes the state: 2 = money in micro-units (1 had float strings)
STATE_FORMAT = "2"
LUA_APPLY = (Path(__file__).parent / "apply_invoice.lua").read_text(encoding="utf-8")
#: the script's name in Redis's script cache (SCRIPT LOAD answers the same)
LUA_APPLY_SHA = hashlib.sha1(LUA_APPLY.encode("utf-8"), usedforsecurity=False).hexdigest()
#: The longest wait for one round trip's replies (redis-py's own default socket timeout).
REPLY_TIMEOUT_S = 5.0


class StateFormatError(RuntimeError):
    """The Redis prefix holds state written in another format (see the module docstring)."""


@dataclass(slots=True)  # not frozen: its __init__ would cost 3x, and it runs once per invoice
class InvoiceOp:
    """One invoice, reduced to what the script needs."""

    customer_id: str
    invoice_id: str
    ts: float  # event time, epoch seconds
    kind: str  # "P" purchase, "C" cancellation, "A" adjustment
    spend: float
    items: int
    category_spend: dict[int, float] = field(default_factory=dict)
    score_json: str = ""  # non-empty: store as the first purchase if the customer has none
    features_json: str = ""
    due: float = 0.0  # fp_at + horizon, epoch seconds
    #: the whole script call without a score, packed by the native reader (`CustomerStore`
    #: sends it as is while `score_json` is empty)
    packed: bytes | None = None

    def argv(self) -> tuple[str | int | float, ...]:
        """The script's ARGV: money in micro-units (`MICROS`), times as hiredis writes floats
        (`repr`, which Lua reads back).

        >>> InvoiceOp("7", "1", 1.5, "P", 20.85, 3, {2: 20.85}).argv()[3:6]
        (20850000, 3, '2 20850000')
        """
        cats = " ".join([f"{c} {round(a * MICROS)}" for c, a in self.category_spend.items()])
        return (self.invoice_id, self.ts, self.kind, round(self.spend * MICROS), self.items,
                cats, self.score_json, self.features_json, self.due or 0)  # 0: packed faster

    def money_in_range(self) -> bool:
        """Whether the spend and every category's lie within +-`MAX_INVOICE_MONEY`.

        >>> InvoiceOp("7", "1", 1.5, "P", 2e9, 3, {2: 2e9}).money_in_range()
        False
        """
        cats = self.category_spend.values()
        return abs(self.spend) <= MAX_INVOICE_MONEY and (not cats or (
            max(cats) <= MAX_INVOICE_MONEY and min(cats) >= -MAX_INVOICE_MONEY))


@dataclass(slots=True)
class Applied:
    status: str  # first | dup_first | dup | cancel_unknown | applied | overflow
    score_json: str | None = None


class CustomerStore:
    """Pipelined access to the customers' state.

    >>> CustomerStore(None, "t1").keys("13085")
    ('t1:cust:{13085}', 't1:cust:{13085}:inv', 't1:cust:{13085}:cat_micros')
    """

    def __init__(self, redis: Redis, prefix: str = "") -> None:
        self.redis = redis
        self.prefix = prefix if not prefix or prefix.endswith(":") else prefix + ":"
        self._sha: str | None = None
        #: bumped whenever Redis may have lost state unseen (a call failed and its connection
        #: was dropped, or the script cache was found empty): what a caller kept from earlier
        #: replies may be stale
        self.epoch = 0

    def keys(self, customer_id: str) -> tuple[str, str, str]:
        base = f"{self.prefix}cust:{{{customer_id}}}"
        return base, base + ":inv", base + ":cat_micros"

    @property
    def maturation_key(self) -> str:
        return f"{self.prefix}maturation"

    @property
    def watermark_key(self) -> str:
        return f"{self.prefix}watermark"

    async def check_format(self) -> None:
        """Claim the prefix for `STATE_FORMAT`, or raise `StateFormatError` if its state was
        written in another format."""
        key = f"{self.prefix}state_format"
        found = await self.redis.get(key)
        if found is None:
            if await self.redis.exists(self.watermark_key):
                found = b"1"  # written before the format key existed
            else:
                await self.redis.set(key, STATE_FORMAT, nx=True)
                found = await self.redis.get(key)
        if _text(found) != STATE_FORMAT:
            raise StateFormatError(
                f"Redis prefix {self.prefix!r} holds customer state in format {_text(found)}, "
                f"this version writes format {STATE_FORMAT} (money in micro-units): use a new "
                "BASKETCAST_REDIS_PREFIX, or delete the old prefix's keys, and replay the log")

    async def load_script(self) -> str:
        self._sha = await self.redis.script_load(LUA_APPLY)
        return self._sha

    async def have_first_purchase(self, customer_ids: Iterable[str]) -> dict[str, bool]:
        """Which of these customers already have a stored first purchase (one round trip)."""
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        replies = await self._round_trip(
            [("HEXISTS", self.keys(cid)[0], "fp_invoice") for cid in ids])
        return {cid: bool(x) for cid, x in zip(ids, replies, strict=True)}

    async def apply(self, ops: Sequence[InvoiceOp]) -> list[Applied]:
        """Run the script for every op in one pipeline; safe to repeat after any failure."""
        if not ops:
            return []
        if self._sha is None:
            await self.load_script()
        try:
            raw = await self._apply(ops)
        except NoScriptError:  # Redis restarted and lost its script cache
            self.epoch += 1
            await self.load_script()
            raw = await self._apply(ops)
        return [Applied(_text(r[0]), _text(r[1]) if len(r) > 1 else None) for r in raw]

    async def _apply(self, ops: Sequence[InvoiceOp]) -> list:
        head = ("EVALSHA", self._sha, 3)
        ours = self._sha == LUA_APPLY_SHA  # the script the packed calls name
        return await self._round_trip(
            [op.packed if ours and op.packed is not None and not op.score_json
             else (*head, *self.keys(op.customer_id), *op.argv()) for op in ops])

    async def register(
        self, maturing: dict[str, float], watermark: float | None,
        partitions: dict[int, float] | None = None,
    ) -> None:
        """Register scored customers for label maturation and advance the watermark (and the
        per-partition watermarks: members `partition:<n>`)."""
        commands: list[tuple[object, ...]] = []
        if maturing:
            commands.append(("ZADD", self.maturation_key, "NX",
                              *(x for cid, due in maturing.items() for x in (repr(due), cid))))
        marks = {f"partition:{p}": ts for p, ts in (partitions or {}).items()}
        if watermark is not None:
            marks["event_time"] = watermark
        if marks:
            commands.append(("ZADD", self.watermark_key, "GT",
                              *(x for m, ts in marks.items() for x in (repr(ts), m))))
        if commands:
            await self._round_trip(commands)

    async def _round_trip(
        self, commands: Sequence[tuple[object, ...] | bytes]
    ) -> list[object]:
        """Send `commands` (or commands packed already) in one write on one pooled connection
        and read their replies, in order, under one timeout (`REPLY_TIMEOUT_S`).

        A redis-py pipeline spent ~6 us per command on its own bookkeeping (a command stack,
        a timeout context and a callback lookup per reply; its asyncio client also packs
        commands in Python, hiredis does it in C): ~8 % of the worker's time, for the one or two
        commands each invoice needs. An error reply (e.g. NOSCRIPT) is raised after
        every reply was read, so the connection stays usable; any other failure drops it.
        """
        pool = self.redis.connection_pool
        conn = await pool.get_connection()
        error: ResponseError | None = None
        replies: list[object] = []
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                pack = hiredis.pack_command
                await conn.send_packed_command(
                    b"".join([c if c.__class__ is bytes else pack(c) for c in commands]))
                await _read_replies(conn, len(commands), replies)
                error = next((r for r in replies if isinstance(r, ResponseError)), None)
        except BaseException:
            self.epoch += 1
            await conn.disconnect(nowait=True)
            raise
        finally:
            await pool.release(conn)
        if error is not None:
            raise error
        return replies

    async def customer(self, customer_id: str) -> dict[str, object] | None:
        """A customer's state (for tests, the web endpoints and the learner); None if unknown."""
        cust, inv, cat = self.keys(customer_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(cust)
        pipe.hgetall(inv)
        pipe.hgetall(cat)
        return state_view(*await pipe.execute())


def state_view(state: dict, invoices: dict, cats: dict) -> dict[str, object] | None:
    """A customer's three hashes as `CustomerStore.customer` gives them: text fields, money as
    float units (`spend`, `h_spend`), the applied invoice ids, spend per category; None if
    the customer is unknown.

    >>> state_view({b"orders": b"2", b"spend_micros": b"20850000"}, {b"9": b"1.0"},
    ...            {b"2": b"20850000"})
    {'orders': '2', 'spend': 20.85, 'invoices': ['9'], 'category_spend': {2: 20.85}}
    """
    if not state:
        return None
    out: dict[str, object] = {}
    for k, v in state.items():
        name = _text(k)
        if name.endswith("_micros"):
            out[name.removesuffix("_micros")] = int(v) / MICROS
        else:
            out[name] = _text(v)
    out["invoices"] = sorted(_text(k) for k in invoices)
    out["category_spend"] = {int(_text(k)): int(v) / MICROS for k, v in cats.items()}
    return out


def _drainable(conn: Any) -> tuple[Any, Any, object, Any] | None:
    """(hiredis reader, refill, "no reply yet" value, push handler) of redis-py's hiredis
    parser on `conn`, or None if this redis-py keeps them elsewhere (then replies are read one
    by one)."""
    parser = getattr(conn, "_parser", None)
    reader = getattr(parser, "_reader", None)
    refill = getattr(parser, "read_from_socket", None)
    on_push = getattr(parser, "handle_push_response", None)
    module = sys.modules.get(type(parser).__module__)
    not_yet = getattr(module, "NOT_ENOUGH_DATA", None)
    if (reader is None or refill is None or on_push is None or not_yet is None
            or not hasattr(reader, "gets")):
        return None
    return reader, refill, not_yet, on_push


async def _read_replies(conn: Any, n: int, replies: list[object]) -> None:
    """Append `n` replies from `conn`, an error reply as its exception (not raised).

    redis-py's hiredis reader is drained directly, without `read_response`'s timeout and checks
    around each of a batch's ~4,000 replies: with the commands built in one pass, the client's
    CPU per applied invoice went from 12-16 to 8 us (tests/stream/test_store.py checks that
    this path is the one taken).
    """
    drain = _drainable(conn)
    if drain is None:
        for _ in range(n):
            try:
                replies.append(await conn.read_response(timeout=math.inf))
            except ResponseError as exc:
                replies.append(exc)
        return
    reader, refill, not_yet, on_push = drain
    gets, pending = reader.gets, n
    while pending:
        reply = gets()
        if reply is not_yet:
            await refill()
            continue
        if _PUSH is not None and isinstance(reply, _PUSH):
            # RESP3 out-of-band message (e.g. a maintenance notice): not a reply to a command
            await on_push(reply)
            continue
        if isinstance(reply, RedisConnectionError) or (
                isinstance(reply, list) and reply and isinstance(reply[0], RedisConnectionError)):
            raise reply if isinstance(reply, Exception) else reply[0]  # as redis-py raises it
        replies.append(reply)
        pending -= 1


def _text(v: object) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)
