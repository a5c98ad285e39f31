"""Replay a line-level log into Kafka: one `InvoiceEvent` per invoice, in time order.

Events are keyed by customer id (guests: no key), so a customer's invoices reach one partition
in order. `speed=0` produces as fast as possible; `speed=N` keeps N x the log's real pace.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from schemas.invoice import InvoiceEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayStats:
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def load_events(
    path: str | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[InvoiceEvent]:
    """The log's invoices with since <= invoiced_at < until, in time order, at most `limit`."""
    from offline.events import invoices_from_lines
    from offline.load import read_log

    df = read_log(path)
    if since is not None:
        df = df[df["invoiced_at"] >= pd.Timestamp(since)]
    if until is not None:
        df = df[df["invoiced_at"] < pd.Timestamp(until)]
    if limit is not None:  # keep the lines of the first `limit` invoices only (fast path)
        order = df.sort_values(["invoiced_at", "invoice_id"], kind="stable")["invoice_id"]
        df = df[df["invoice_id"].isin(set(order.drop_duplicates().iloc[:limit]))]
    events = invoices_from_lines(df)
    return events[:limit] if limit is not None else events


def encode(ev: InvoiceEvent) -> tuple[bytes | None, bytes]:
    """Kafka key and value of an event."""
    key = ev.customer_id.encode() if ev.customer_id is not None else None
    return key, ev.model_dump_json().encode()


async def produce(
    events: Sequence[InvoiceEvent],
    bootstrap: str,
    topic: str,
    *,
    speed: float = 0.0,
    progress: bool = True,
) -> ReplayStats:
    """Produce `events` to `topic`; returns how many and how long (until all acknowledged)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all",
                                max_batch_size=256 * 1024)
    await producer.start()
    bar = tqdm(total=len(events), unit="ev", disable=not progress, file=sys.stderr)
    start = time.perf_counter()
    try:
        t0 = events[0].invoiced_at if events else None
        for i, ev in enumerate(events):
            if speed > 0 and t0 is not None:
                due = (ev.invoiced_at - t0).total_seconds() / speed
                wait = due - (time.perf_counter() - start)
                if wait > 0:
                    await asyncio.sleep(wait)
            key, value = encode(ev)
            await producer.send(topic, value, key=key)
            if i % 256 == 255:
                bar.update(256)
        await producer.flush()
        bar.update(len(events) - bar.n)
    finally:
        bar.close()
        await producer.stop()
    stats = ReplayStats(len(events), time.perf_counter() - start)
    log.info("event=replay_done topic=%s events=%d seconds=%.2f events_per_s=%.0f",
             topic, stats.events, stats.seconds, stats.events_per_s)
    return stats
