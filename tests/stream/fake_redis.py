"""An in-memory stand-in for the few `redis.asyncio` commands the learner uses (unit tests).

Values come back as bytes, like redis-py without `decode_responses`.
"""

from __future__ import annotations

import math
from typing import Any


def _b(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    return (repr(v) if isinstance(v, float) else str(v)).encode()


def _bound(v: Any) -> tuple[float, bool]:
    s = v.decode() if isinstance(v, bytes) else str(v)
    if s.startswith("("):
        return float(s[1:]), True
    return (-math.inf if s == "-inf" else math.inf if s == "+inf" else float(s)), False


class FakeRedis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[bytes, bytes]] = {}
        self.zsets: dict[str, dict[bytes, float]] = {}
        self.writes = 0  # hash writes, to check what a step wrote
        self.pipelined: list[int] = []  # commands per executed pipeline

    async def hget(self, key: str, field: str) -> bytes | None:
        return self.hashes.get(key, {}).get(_b(field))

    async def hmget(self, key: str, fields: list[str]) -> list[bytes | None]:
        h = self.hashes.get(key, {})
        return [h.get(_b(f)) for f in fields]

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return dict(self.hashes.get(key, {}))

    async def hset(self, key: str, mapping: dict[str, Any]) -> int:
        self.writes += 1
        h = self.hashes.setdefault(key, {})
        for k, v in mapping.items():
            h[_b(k)] = _b(v)
        return len(mapping)

    async def zadd(self, key: str, mapping: dict[str, float], nx: bool = False,
                   gt: bool = False) -> int:
        z = self.zsets.setdefault(key, {})
        for m, s in mapping.items():
            m = _b(m)
            if nx and m in z or gt and m in z and z[m] >= s:
                continue
            z[m] = float(s)
        return len(mapping)

    async def zscore(self, key: str, member: str) -> float | None:
        return self.zsets.get(key, {}).get(_b(member))

    async def zrangebyscore(self, key: str, low: Any, high: Any, start: int | None = None,
                            num: int | None = None, withscores: bool = False) -> list:
        (lo, lo_open), (hi, hi_open) = _bound(low), _bound(high)
        rows = sorted(((s, m) for m, s in self.zsets.get(key, {}).items()
                       if (s > lo if lo_open else s >= lo) and (s < hi if hi_open else s <= hi)))
        if start is not None and num is not None:
            rows = rows[start:start + num]
        return [(m, s) for s, m in rows] if withscores else [m for _, m in rows]

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis, self.queue, self.watching = redis, [], False

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.queue = []

    async def watch(self, *keys: str) -> None:
        self.watching = True

    async def unwatch(self) -> None:
        self.watching = False

    def multi(self) -> None:
        self.watching = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.redis, name)
        if self.watching:
            return method

        def queue(*args: Any, **kwargs: Any) -> FakePipeline:
            self.queue.append((method, args, kwargs))
            return self

        return queue

    async def execute(self) -> list[Any]:
        self.redis.pipelined.append(len(self.queue))
        out = [await m(*a, **k) for m, a, k in self.queue]
        self.queue = []
        return out
