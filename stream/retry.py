"""Retry a Redis step until it succeeds: exponential backoff with jitter, a log line per try.

The worker never acknowledges an event whose Redis step failed, so it waits here instead
(at-least-once); the steps are idempotent, so repeating one after a partial failure is safe.

>>> import asyncio
>>> calls = []
>>> async def flaky():
...     calls.append(1)
...     if len(calls) < 3:
...         raise ConnectionError("down")
...     return "ok"
>>> asyncio.run(retry_until_done(flaky, "demo", backoff=Backoff(base=0.001)))
'ok'
>>> len(calls)
3
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: What counts as "Redis unavailable": anything from the client, and socket-level errors.
TRANSIENT: tuple[type[BaseException], ...] = (RedisError, ConnectionError, TimeoutError, OSError)
#: A service that does not answer (down, restarting, still loading its data): expected in
#: operation, so a periodic task logs it in one line, not with a traceback.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Backoff:
    base: float = 0.1
    cap: float = 5.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        d = min(self.cap, self.base * 2**attempt)
        return d * (1 + self.jitter * (2 * random.random() - 1))


async def retry_until_done(
    step: Callable[[], Awaitable[T]],
    what: str,
    backoff: Backoff = Backoff(),
    *,
    service: str = "redis",
    transient: tuple[type[BaseException], ...] = TRANSIENT,
) -> T:
    """Await `step()` until it does not raise a `transient` error; cancellation stops it."""
    attempt = 0
    while True:
        try:
            result = await step()
        except transient as exc:
            delay = backoff.delay(attempt)
            log.warning(
                "event=%s_unavailable step=%s attempt=%d retry_in=%.2fs error=%r",
                service, what, attempt + 1, delay, exc,
            )
            attempt += 1
            await asyncio.sleep(delay)
            continue
        if attempt:
            log.warning("event=%s_recovered step=%s attempts=%d", service, what, attempt + 1)
        return result
