"""`basketcast replay`: filters, pacing, keys (the broker through the fixtures)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from schemas.invoice import InvoiceEvent, InvoiceLine
from stream.replay import load_events, produce
from stream.topics import ensure_topics


def test_since_until_limit(shipped_log: Path) -> None:
    since, until = datetime(2010, 3, 1), datetime(2010, 3, 8)
    events = load_events(shipped_log, since=since, until=until)
    assert events and all(since <= ev.invoiced_at < until for ev in events)
    assert load_events(shipped_log, since=since, until=until, limit=10) == events[:10]


def _event(i: int, customer: str | None) -> InvoiceEvent:
    return InvoiceEvent(
        invoice_id=f"{500000 + i}", customer_id=customer,
        invoiced_at=datetime(2010, 1, 4, 9) + timedelta(seconds=10 * i),
        lines=(InvoiceLine(stock_code="85048", quantity=1, unit_price=2.0),),
    )


@pytest.mark.integration
async def test_produce_keys_by_customer_and_keeps_pace(kafka_bootstrap: str,
                                                      unique_id: str) -> None:
    topic = f"{unique_id}-invoices"
    await ensure_topics(kafka_bootstrap, [topic], 3)
    events = [_event(i, None if i == 3 else f"c{i % 4}") for i in range(11)]
    stats = await produce(events, kafka_bootstrap, topic, speed=100.0, progress=False)
    assert stats.events == 11
    assert stats.seconds >= 1.0  # 100 s of log time at 100 x real time
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"{unique_id}-r")
    await consumer.start()
    got = []
    try:
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            got += [r for recs in batch.values() for r in recs]
            if len(got) >= 11:
                break
    finally:
        await consumer.stop()
    by_invoice = {InvoiceEvent.model_validate_json(r.value).invoice_id: r for r in got}
    assert len(by_invoice) == 11
    for ev in events:
        record = by_invoice[ev.invoice_id]
        assert record.key == (ev.customer_id.encode() if ev.customer_id else None)
    partitions = {r.key: r.partition for r in got if r.key}
    for r in got:  # one customer, one partition: their invoices stay in order
        assert r.key is None or partitions[r.key] == r.partition
