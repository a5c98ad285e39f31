"""The stream's per-invoice figures follow the batch side's rules (no services)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from offline.events import (
    clean_total,
    counts_toward_spend,
    is_first_purchase_candidate,
    product_lines,
)
from stream.aggregates import LineCategories, invoice_op
from stream.fast_invoice import FastInvoice, FastLine, decode
from stream.replay import encode, load_events
from stream.store import InvoiceOp


@pytest.fixture(scope="module")
def events(shipped_log: Path) -> list:
    return load_events(shipped_log, limit=4000)


def test_load_events_limit_keeps_time_order(events: list) -> None:
    assert len(events) == 4000
    keys = [(ev.invoiced_at, ev.invoice_id) for ev in events]
    assert keys == sorted(keys)


def test_invoice_kind_agrees_with_offline_on_the_whole_log(log_events: list) -> None:
    customers = [ev for ev in log_events if ev.customer_id is not None]
    assert len(customers) > 1000
    for ev in customers:
        kind = invoice_op(ev, LineCategories(lambda code, desc: 0)).kind
        assert (kind == "P") == is_first_purchase_candidate(ev), ev.invoice_id
        assert (kind in ("P", "C")) == counts_toward_spend(ev), ev.invoice_id


@pytest.mark.parametrize("invoice_id", [
    "489434", "C489434", "c489434", "A563185", "a563185", "ß1", "ﬀ1", "Ç1", "", "C", "a"])
def test_invoice_kind_reads_the_contracts_prefixes(invoice_id: str) -> None:
    """The kind comes from the id's first character: the same answer as the contract's
    `invoice_id.upper().startswith(...)`, whatever the case or script of that character."""
    ev = FastInvoice(invoice_id=invoice_id, customer_id="7", invoiced_at=datetime(2010, 1, 4),
                     lines=(FastLine(stock_code="85048", quantity=2, unit_price=1.5),))
    kind = invoice_op(ev, LineCategories(lambda code, desc: 0)).kind
    assert (kind == "C") == ev.is_cancellation  # the contract's own properties
    assert (kind == "A") == (ev.is_adjustment and not ev.is_cancellation)
    assert (kind == "P") == (not ev.is_cancellation and not ev.is_adjustment)


def test_a_nearly_cancelling_invoice_has_one_kind_on_both_sides() -> None:
    """Both sides add the lines left to right (Python 3.12's `sum()` would compensate and
    find 1e-5 here, a purchase, where the stream finds 0)."""
    ev = FastInvoice(invoice_id="1", customer_id="7", invoiced_at=datetime(2010, 1, 4), lines=(
        FastLine(stock_code="85048", quantity=1_000_000, unit_price=1e6),
        FastLine(stock_code="85049", quantity=1, unit_price=1e-5),
        FastLine(stock_code="85050", quantity=-1_000_000, unit_price=1e6)))
    op = invoice_op(ev, LineCategories(lambda code, desc: 0))
    assert (op.kind == "P") == is_first_purchase_candidate(ev)  # type: ignore[arg-type]
    assert op.spend == clean_total(ev)  # type: ignore[arg-type]


@pytest.mark.parametrize("spend, cats, ok", [
    (5.0, {}, True), (5.0, {0: 5.0}, True), (0.0, {0: 1e9, 1: -1e9}, True),
    (0.0, {0: 2e9, 1: -2e9}, False), (-1.0, {0: 1.0, 1: -2e9}, False), (2e9, {0: 2e9}, False),
    (-2e9, {}, False)])
def test_money_in_range_checks_the_spend_and_every_category(
        spend: float, cats: dict[int, float], ok: bool) -> None:
    assert InvoiceOp("7", "1", 0.0, "P", spend, 1, cats).money_in_range() is ok


def test_invoice_op_follows_offline_rules(events: list) -> None:
    line_category = LineCategories(lambda code, desc: len(code) % 3)
    for ev in (e for e in events if e.customer_id is not None):
        op = invoice_op(ev, line_category)
        assert invoice_op(decode(encode(ev)[1]), line_category) == op  # the worker's view
        assert (op.kind == "P") == is_first_purchase_candidate(ev), ev.invoice_id
        assert op.kind != "P" or not (ev.is_cancellation or ev.is_adjustment)
        if counts_toward_spend(ev):
            assert op.spend == clean_total(ev)
            assert op.items == sum(ln.quantity for ln in product_lines(ev))
            assert sum(op.category_spend.values()) == pytest.approx(op.spend, abs=1e-6)
        else:
            assert op.spend == 0.0 and op.items == 0 and op.category_spend == {}


def test_replay_encoding_round_trips(events: list) -> None:
    from schemas.invoice import InvoiceEvent

    for ev in events[:500]:
        key, value = encode(ev)
        assert key == (ev.customer_id.encode() if ev.customer_id else None)
        assert InvoiceEvent.model_validate_json(value) == ev


def test_line_categories_equal_the_categoriser_on_the_log(log_events: list) -> None:
    """The by-code shortcut answers what `category_of` would, for every line of the log."""
    from offline.codes import is_product_code

    calls: list[tuple[str, str | None]] = []

    def category_of(code: str, desc: str | None) -> int:
        calls.append((code, desc))
        return len(desc or "") % 5 if code.startswith("8") else len(code) % 3

    # what a categoriser knows: some product codes; a non-product code in it is never used
    known = {"85123A": 1, "22423": 2, "POST": 4}
    categories = LineCategories(category_of, known)
    assert "POST" not in categories.by_code or categories.by_code["POST"] == -1
    lines = [ln for ev in log_events for ln in ev.lines]
    for _ in range(2):  # cold, then from the caches
        for ln in lines:
            code, desc = ln.stock_code, ln.description
            expected = (known[code] if code in known else category_of(code, desc)) \
                if is_product_code(code) else -1
            assert categories(code, desc) == expected, (code, desc)
    calls.clear()
    for ln in lines[:5000]:
        categories(ln.stock_code, ln.description)
    assert not calls  # every line answered from the caches


def test_line_categories_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import stream.aggregates as aggregates

    monkeypatch.setattr(aggregates, "MAX_CACHED_LINES", 10)
    categories = LineCategories(lambda code, desc: len(desc or ""))
    for i in range(100):
        assert categories("85048", "x" * i) == i
        assert categories(f"TEST{i}", None) == -1  # non-product codes: bounded too
    assert len(categories._by_line) <= 10
    assert len(categories.by_code) <= 10


def test_event_time_is_the_utc_timestamp(log_events: list) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from hypothesis import given
    from hypothesis import strategies as st

    from stream.aggregates import event_time

    for ev in log_events:
        when = ev.invoiced_at
        assert event_time(when) == when.replace(tzinfo=UTC).timestamp()

    @given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
           st.integers(-14 * 60, 14 * 60))
    def check(when: datetime, offset_min: int) -> None:
        assert event_time(when) == when.replace(tzinfo=UTC).timestamp()
        aware = when.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
        assert event_time(aware) == aware.timestamp()

    check()
