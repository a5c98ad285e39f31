"""The fast decoder is never more lenient than the contract, and reads the same values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.invoice import MAX_LINES, InvoiceEvent, InvoiceLine
from stream.fast_invoice import FastInvoice, FastLine, decode
from stream.replay import encode, load_events
from stream.validate import validate


def _values(ev: object) -> tuple:
    return (ev.invoice_id, ev.customer_id, ev.country, ev.invoiced_at,
            [(ln.stock_code, ln.description, ln.quantity, ln.unit_price) for ln in ev.lines],
            ev.is_cancellation, ev.is_adjustment, ev.total)


def _contract(raw: bytes) -> InvoiceEvent | None:
    try:
        return InvoiceEvent.model_validate_json(raw)
    except ValidationError:
        return None


def assert_never_more_lenient(raw: bytes) -> FastInvoice | None:
    fast = decode(raw)
    if fast is not None:
        model = _contract(raw)
        assert model is not None, f"fast decoder accepted what the contract refuses: {raw!r}"
        assert _values(fast) == _values(model), raw
        assert fast.invoiced_at.utcoffset() == model.invoiced_at.utcoffset()
    return fast


def test_mirror_has_the_contracts_fields_and_constraints() -> None:
    for struct, model in ((FastLine, InvoiceLine), (FastInvoice, InvoiceEvent)):
        info = msgspec.inspect.type_info(struct)
        fields = {f.name: f for f in info.fields}
        assert list(fields) == list(model.model_fields), struct.__name__
        for name, field in model.model_fields.items():
            assert fields[name].required == field.is_required(), name
            if not field.is_required():
                assert fields[name].default == field.default, name


def test_the_shipped_log_is_read_alike(shipped_log: Path) -> None:
    events = load_events(shipped_log, limit=20_000)
    for ev in events:
        raw = encode(ev)[1]
        fast = decode(raw)
        assert fast is not None, raw
        assert _values(fast) == _values(ev)


def _doc(**over: object) -> dict:
    doc = {"invoice_id": "1", "customer_id": "7", "country": "France",
           "invoiced_at": "2010-01-04T09:00:00",
           "lines": [{"stock_code": "A", "description": "MUG", "quantity": 2, "unit_price": 1.5}]}
    doc.update(over)
    return doc


def _line(**over: object) -> dict:
    return _doc(lines=[{**_doc()["lines"][0], **over}])


EDGES = {
    # left to the contract (it accepts them; the fast path does not need to)
    "seven fractional digits": (_doc(invoiced_at="2010-01-04T09:00:00.9999999"), False),
    "lower-case t": (_doc(invoiced_at="2010-01-04t09:00:00"), False),
    "no seconds": (_doc(invoiced_at="2010-01-04T09:00"), False),
    "date only": (_doc(invoiced_at="2010-01-04"), False),
    "epoch seconds": (_doc(invoiced_at=1262595600), False),
    "float quantity": (_line(quantity=2.0), False),
    "float customer id": (_doc(customer_id=17850.0), False),
    # refused by both
    "quantity as text": (_line(quantity="2"), False),
    "boolean quantity": (_line(quantity=True), False),
    "price as text": (_line(unit_price="1.5"), False),
    "leap second": (_doc(invoiced_at="2010-12-31T23:59:60"), False),
    "hour 24": (_doc(invoiced_at="2010-01-04T24:00:00"), False),
    "month 13": (_doc(invoiced_at="2010-13-04T09:00:00"), False),
    "offset minute 60": (_doc(invoiced_at="2010-01-04T09:00:00+00:60"), False),
    "offset minute 75": (_doc(invoiced_at="2010-01-04T09:00:00+05:75"), False),
    "boolean customer id": (_doc(customer_id=True), False),
    "customer id too long": (_doc(customer_id="1" * 33), False),
    "huge integer customer id": (_doc(customer_id=10**40), False),
    "quantity beyond limit": (_line(quantity=10**7), False),
    "price overflow": (_line(unit_price=1e300), False),
    "empty stock code": (_line(stock_code=""), False),
    "65 characters": (_line(stock_code="é" * 65), False),
    "unknown field": (_doc(extra=1), False),
    "no lines": (_doc(lines=[]), False),
    "too many lines": (_doc(lines=[_doc()["lines"][0]] * (MAX_LINES + 1)), False),
    # accepted by both, with equal values
    "space separator": (_doc(invoiced_at="2010-01-04 09:00:00"), True),
    "UTC": (_doc(invoiced_at="2010-01-04T09:00:00Z"), True),
    "offset": (_doc(invoiced_at="2010-01-04T09:00:00.5+05:30"), True),
    "integer customer id": (_doc(customer_id=17850), True),
    "customer id with .0": (_doc(customer_id="17850.0"), True),
    "empty customer id": (_doc(customer_id=""), True),
    "no customer": (_doc(customer_id=None), True),
    "integer price": (_line(unit_price=2), True),
    "64 characters": (_line(stock_code="é" * 64), True),
    "no description": (_line(description=None), True),
}


@pytest.mark.parametrize("case", sorted(EDGES))
def test_edge_cases(case: str) -> None:
    doc, fast_accepts = EDGES[case]
    assert (assert_never_more_lenient(json.dumps(doc).encode()) is not None) == fast_accepts


@pytest.mark.parametrize("raw", [
    b'{"invoice_id": "\xff", "invoiced_at": "2010-01-04T09:00:00",'
    b' "lines": [{"stock_code": "A", "quantity": 1, "unit_price": 1.0}]}',
    b'{"invoice_id": "\\ud800", "invoiced_at": "2010-01-04T09:00:00",'
    b' "lines": [{"stock_code": "A", "quantity": 1, "unit_price": 1.0}]}',
    json.dumps(_doc()).encode() + b" trailing",
    b"\xef\xbb\xbf" + json.dumps(_doc()).encode(),
    b'{"invoice_id": "1", "invoiced_at": "2010-01-04T09:00:00", "lines": [{"stock_code": "A",'
    b' "quantity": 1, "unit_price": NaN}]}',
])
def test_bytes_the_fast_path_refuses(raw: bytes) -> None:
    assert decode(raw) is None
    assert validate(raw).__class__.__name__ == "Rejection"


def test_validate_prefers_the_fast_path_and_falls_back_to_the_contract() -> None:
    assert isinstance(validate(json.dumps(_doc()).encode()), FastInvoice)
    slow = validate(json.dumps(_line(quantity=2.0)).encode())
    assert isinstance(slow, InvoiceEvent) and slow.lines[0].quantity == 2


def test_decoded_invoices_are_not_tracked_by_the_collector() -> None:
    import gc

    fast = validate(json.dumps(_doc()).encode())
    assert isinstance(fast, FastInvoice)
    assert not gc.is_tracked(fast) and not any(gc.is_tracked(ln) for ln in fast.lines)


texts = st.text(max_size=70)
times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                     timezones=st.one_of(st.none(), st.just(UTC),
                                         st.builds(lambda m: timezone(timedelta(minutes=m)),
                                                   st.integers(-23 * 60, 23 * 60))))
time_values = st.one_of(
    st.builds(lambda t, h, m, sign: f"{t.replace(tzinfo=None).isoformat()}{sign}{h:02d}:{m:02d}",
              times, st.integers(0, 25), st.integers(0, 99), st.sampled_from("+-")),
    times.map(lambda t: t.isoformat()), times.map(lambda t: t.isoformat(sep=" ")),
    times.map(lambda t: t.isoformat(timespec="minutes")), texts, st.integers(), st.none(),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 * 10**6, 2 * 10**6),
                    st.integers(), st.floats(allow_nan=False), texts)
lines = st.fixed_dictionaries(
    {"stock_code": st.one_of(texts, scalars), "quantity": scalars, "unit_price": scalars},
    optional={"description": st.one_of(st.text(max_size=510), scalars), "colour": scalars},
)
documents = st.fixed_dictionaries(
    {"invoice_id": st.one_of(st.text(max_size=40), scalars), "invoiced_at": time_values,
     "lines": st.one_of(st.lists(lines, max_size=3), scalars)},
    optional={"customer_id": st.one_of(st.from_regex(r"\d{1,6}(\.0)?", fullmatch=True), scalars),
              "country": st.one_of(st.text(max_size=70), scalars), "note": scalars},
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_generated_documents(doc: dict) -> None:
    assert_never_more_lenient(json.dumps(doc).encode())


near_valid_lines = st.fixed_dictionaries(
    {"stock_code": st.text(min_size=0, max_size=66),
     "quantity": st.integers(-1_000_001, 1_000_001),
     "unit_price": st.one_of(st.floats(-1.1e6, 1.1e6, allow_nan=False), st.integers(-5, 5))},
    optional={"description": st.one_of(st.none(), st.text(max_size=502))},
)
near_valid = st.fixed_dictionaries(
    {"invoice_id": st.text(max_size=33), "invoiced_at": times.map(lambda t: t.isoformat()),
     "lines": st.lists(near_valid_lines, min_size=1, max_size=3)},
    optional={"customer_id": st.one_of(st.none(), st.from_regex(r"\d{0,34}(\.0)?", fullmatch=True),
                                       st.integers(0, 10**35)),
              "country": st.one_of(st.none(), st.text(max_size=66))},
)


@settings(max_examples=400, deadline=None)
@given(near_valid)
def test_generated_documents_near_the_limits(doc: dict) -> None:
    assert_never_more_lenient(json.dumps(doc).encode())
