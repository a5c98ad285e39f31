"""Every dead-letter reason, from raw bytes (no services)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stream_fakes import invoice_json

from schemas.dead_letter import REASONS
from schemas.invoice import MAX_EVENT_BYTES, MAX_LINES, InvoiceEvent
from stream.fast_invoice import FastInvoice
from stream.validate import Rejection, validate


def _doc(**over: object) -> dict:
    doc = json.loads(invoice_json("489434", "13085"))
    doc.update(over)
    return doc


CASES = {
    "not_utf8": b'{"invoice_id": "\xff"}',
    "not_json": b'{"invoice_id": ',
    "wrong_type": json.dumps(_doc(invoice_id=["x"])).encode(),
    "missing_field": json.dumps({k: v for k, v in _doc().items() if k != "invoiced_at"}).encode(),
    "no_lines": json.dumps(_doc(lines=[])).encode(),
    "non_finite": invoice_json("1", "2").replace(b"6.95", b"NaN"),
    "too_many_lines": invoice_json("1", "2", lines=[("A", 1, 1.0)] * (MAX_LINES + 1)),
    "too_large": b" " * (MAX_EVENT_BYTES + 1),
    "invalid": json.dumps(_doc(unexpected="field")).encode(),
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_each_reason(reason: str) -> None:
    result = validate(CASES[reason])
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result.error
    assert result.reason in REASONS


def test_infinity_and_overflow_are_non_finite() -> None:
    assert validate(invoice_json("1", "2").replace(b"6.95", b"Infinity")).reason == "non_finite"
    assert validate(invoice_json("1", "2").replace(b"6.95", b"1e400")).reason == "non_finite"


def test_wrong_top_level_type() -> None:
    assert validate(b"[1, 2]").reason == "wrong_type"
    assert validate(b"null").reason == "wrong_type"
    assert validate(None).reason == "not_json"


def test_valid_event() -> None:
    ev = validate(invoice_json("489434", "13085.0"))
    assert isinstance(ev, InvoiceEvent | FastInvoice) and ev.customer_id == "13085"


@given(st.binary(max_size=200))
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert isinstance(validate(raw), InvoiceEvent | FastInvoice | Rejection)


@pytest.mark.parametrize("field,value", [("quantity", True), ("quantity", "12"),
                                         ("unit_price", "6.95"), ("unit_price", False)])
def test_a_number_must_be_a_json_number(field: str, value: object) -> None:
    doc = _doc()
    doc["lines"][0][field] = value
    result = validate(json.dumps(doc).encode())
    assert isinstance(result, Rejection) and result.reason == "wrong_type", result
    assert f"lines.0.{field}" in result.error


def test_a_whole_float_quantity_is_a_quantity() -> None:
    doc = _doc()
    doc["lines"][0]["quantity"] = 12.0
    ev = validate(json.dumps(doc).encode())
    assert not isinstance(ev, Rejection) and ev.lines[0].quantity == 12
