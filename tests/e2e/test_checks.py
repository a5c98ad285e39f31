"""The end-to-end checks can fail: `check_scores` and `expected_state` on hand-made inputs.

No services: a fake output stream and a two-customer oracle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pytest
from e2e_harness import Outputs, Run, check_scores, expected_state

from schemas.invoice import InvoiceEvent, InvoiceLine
from schemas.scored import CustomerScored, score_event_id

RUN = Run("t", "127.0.0.1:1", "redis://127.0.0.1:1/0")


@dataclass
class Rec:
    topic: str
    key: bytes
    value: bytes


def _oracle() -> pd.DataFrame:
    rows = [
        {"customer_id": "1", "invoice_id": "10", "first_purchase_at": "2010-01-01T10:00:00",
         "segment": 0, "segment_label": "a", "p_repeat": 0.5, "expected_orders": 1.25,
         "expected_spend": 100.0, "model_version": "m"},
        {"customer_id": "2", "invoice_id": "20", "first_purchase_at": "2010-01-02T10:00:00",
         "segment": 1, "segment_label": "b", "p_repeat": 0.25, "expected_orders": 2.5,
         "expected_spend": 50.0, "model_version": "m"},
    ]
    return pd.DataFrame(rows).set_index("customer_id")


def _score(cid: str, **change: object) -> bytes:
    o = _oracle().loc[cid]
    doc = {"event_id": score_event_id("m", cid, o["invoice_id"]), "customer_id": cid,
           "invoice_id": o["invoice_id"], "first_purchase_at": o["first_purchase_at"],
           "segment": int(o["segment"]), "segment_label": o["segment_label"],
           "p_repeat": o["p_repeat"], "expected_orders": o["expected_orders"],
           "expected_spend": o["expected_spend"], "horizon_days": 365, "model_version": "m",
           "scored_at": "2026-01-01T00:00:00Z", **change}
    return CustomerScored.model_validate(doc).model_dump_json().encode()


def _outputs(*values: bytes) -> Outputs:
    out = Outputs(RUN)
    for v in values:
        out.scores.append(Rec(RUN.scores, json.loads(v)["customer_id"].encode(), v))
        out.first.setdefault(json.loads(v)["event_id"], v)
    return out


def test_equal_outputs_pass_and_duplicates_are_counted() -> None:
    check = check_scores(_outputs(_score("1"), _score("2"), _score("1")), _oracle())
    assert (check.records, check.distinct, check.duplicates) == (3, 2, 1)


@pytest.mark.parametrize("values, message", [
    ((_score("1"),), "missing"),
    ((_score("1"), _score("2", p_repeat=0.25 + 2e-9)), "p_repeat"),
    ((_score("1"), _score("2"), _score("1", scored_at="2026-01-02T00:00:00Z")), "differs"),
    ((_score("1"), _score("2", segment=2)), "2"),
])
def test_any_difference_fails(values: tuple[bytes, ...], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_scores(_outputs(*values), _oracle())


def test_expected_state_counts_each_invoice_by_kind() -> None:
    def ev(inv: str, qty: int, code: str = "85048") -> InvoiceEvent:
        return InvoiceEvent(invoice_id=inv, customer_id="7", invoiced_at=datetime(2010, 1, 1),
                            lines=(InvoiceLine(stock_code=code, quantity=qty, unit_price=2.0),))

    state = expected_state([ev("1", 3), ev("C2", -1), ev("3", 1, "POST")], lambda c, d: 0)
    row = state.loc["7"]
    assert (row["P"], row["C"], row["O"], row["A"]) == (1, 1, 1, 0)
    assert row["spend"] == 4.0 and row["items"] == 2 and row["cat_0"] == 4.0
    assert row["invoices"] == ["1", "3", "C2"]


def test_expected_state_horizon_label() -> None:
    def ev(inv: str, qty: int, day: int, code: str = "85048") -> InvoiceEvent:
        return InvoiceEvent(invoice_id=inv, customer_id="7", invoiced_at=datetime(2010, 1, day),
                            lines=(InvoiceLine(stock_code=code, quantity=qty, unit_price=2.0),))

    events = [ev("0", 1, 1, "POST"), ev("1", 3, 2), ev("C2", -1, 3), ev("3", 2, 5), ev("4", 5, 20)]
    row = expected_state(events, lambda c, d: 0, {"7": "1"}, horizon_days=10).loc["7"]
    # after the first purchase "1", within 10 days: C2 and 3 (not 0 before it, not 4 after)
    assert (row["h_orders"], row["h_spend"], row["h_items"]) == (1, 2.0, 1)


@pytest.mark.integration
async def test_check_redis_catches_a_double_count_and_a_missing_customer(
    redis_url: str, unique_id: str,
) -> None:
    """State written by the real Lua script passes; one invoice counted twice, or a customer
    missing, fails."""
    import redis.asyncio as aioredis
    from e2e_harness import check_redis, drop_prefix

    from stream.aggregates import LineCategories, invoice_op
    from stream.store import CustomerStore

    def ev(cid: str, inv: str, qty: int) -> InvoiceEvent:
        return InvoiceEvent(invoice_id=inv, customer_id=cid, invoiced_at=datetime(2010, 1, 1),
                            lines=(InvoiceLine(stock_code="85048", quantity=qty, unit_price=2.0),))

    events = [ev("7", "1", 3), ev("7", "2", 1), ev("8", "3", 2)]
    client = aioredis.from_url(redis_url)
    store = CustomerStore(client, unique_id)
    try:
        await store.apply([invoice_op(e, LineCategories(lambda c, d: 0)) for e in events])
        expected = expected_state(events, lambda c, d: 0)
        assert await check_redis(client, unique_id, expected, []) == 2
        with pytest.raises(AssertionError, match="misses 1"):
            await check_redis(client, unique_id, expected_state([*events, ev("9", "4", 1)],
                                                                lambda c, d: 0), [])
        await client.hincrby(store.keys("7")[0], "orders", 1)  # invoice 2 counted twice
        with pytest.raises(AssertionError, match="orders"):
            await check_redis(client, unique_id, expected, [])
    finally:
        await drop_prefix(client, unique_id)
        await client.aclose()
