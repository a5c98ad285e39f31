"""The stream's per-invoice figures follow the batch side's rules (no services)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from offline.events import (
    clean_total,
    counts_toward_spend,
    is_first_purchase_candidate,
    product_lines,
)
from stream.aggregates import invoice_op, product_category
from stream.fast_invoice import decode
from stream.replay import encode, load_events

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("BASKETCAST_DATA", ROOT.parent / "shared/data/online_retail_ii.parquet"))


@pytest.fixture(scope="module")
def events() -> list:
    if not DATA.exists():
        pytest.skip(f"{DATA} not found")
    return load_events(DATA, limit=4000)


def test_load_events_limit_keeps_time_order(events: list) -> None:
    assert len(events) == 4000
    keys = [(ev.invoiced_at, ev.invoice_id) for ev in events]
    assert keys == sorted(keys)


@pytest.fixture(scope="module")
def all_events() -> list:
    if not DATA.exists():
        pytest.skip(f"{DATA} not found")
    return load_events(DATA)


def test_invoice_kind_agrees_with_offline_on_the_whole_log(all_events: list) -> None:
    customers = [ev for ev in all_events if ev.customer_id is not None]
    assert len(customers) > 1000
    for ev in customers:
        kind = invoice_op(ev, product_category(lambda code, desc: 0)).kind
        assert (kind == "P") == is_first_purchase_candidate(ev), ev.invoice_id
        assert (kind in ("P", "C")) == counts_toward_spend(ev), ev.invoice_id


def test_invoice_op_follows_offline_rules(events: list) -> None:
    line_category = product_category(lambda code, desc: len(code) % 3)
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
