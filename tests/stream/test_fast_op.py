"""The native reader never accepts what the contract refuses, and its ops equal `invoice_op`'s."""

from __future__ import annotations

import json
import os

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fast_invoice import EDGES, _doc, _line, documents, near_valid

from schemas.invoice import MAX_LINES
from stream.aggregates import LineCategories, invoice_op
from stream.fast_op import GUEST, NATIVE, op_reader
from stream.replay import encode
from stream.store import LUA_APPLY_SHA, CustomerStore
from stream.validate import Rejection, validate

needs_native = pytest.mark.skipif(not NATIVE, reason="stream._fastop not built (no cargo?)")


def test_the_native_reader_is_built_in_ci() -> None:
    """CI installs with cargo: a missing module there would silently slow the worker down."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes") and not NATIVE:
        pytest.skip("stream._fastop not built (no cargo?); the worker takes the Python path")
    assert NATIVE


def _categories() -> LineCategories:
    """Known codes by code, the rest by code and description (through the callback), and
    non-product codes -1: every branch of the category lookup."""
    known = {f"2{i:04d}": i % 5 for i in range(0, 10_000, 2)}
    return LineCategories(lambda code, desc: (len(code) + len(desc or "")) % 4, known)


def _fields(op: object) -> tuple:
    return (op.customer_id, op.invoice_id, op.ts, op.kind, op.spend, op.items,
            op.category_spend, op.argv())


PREFIX = "run7"


def assert_read_alike(raw: bytes, read=None, categories=None) -> object:
    """What the reader makes of `raw`, after checking it against the Python path (the op, and
    its script call packed as the store packs it)."""
    categories = categories or _categories()
    found = (read or op_reader(_categories(), CustomerStore(None, PREFIX).keys))(raw)
    if found is None:
        return None
    checked = validate(raw)
    assert not isinstance(checked, Rejection), f"reader accepted what the contract refuses: {raw!r}"
    if found is GUEST:
        assert checked.customer_id is None, raw
        return found
    op = invoice_op(checked, categories)
    assert op.money_in_range(), raw
    assert _fields(found) == _fields(op), raw
    if found.packed is not None:
        keys = CustomerStore(None, PREFIX).keys(op.customer_id)
        assert found.packed == hiredis.pack_command(
            ("EVALSHA", LUA_APPLY_SHA, 3, *keys, *op.argv())), raw
    return found


@needs_native
def test_every_invoice_of_the_shipped_log_is_read_alike(log_events: list) -> None:
    categories = _categories()
    read = op_reader(_categories(), CustomerStore(None, PREFIX).keys)
    native = packed = 0
    for ev in log_events:
        found = assert_read_alike(encode(ev)[1], read, categories)
        native += found is not None
        packed += getattr(found, "packed", None) is not None
    assert native == len(log_events)  # the whole log takes the native path
    assert packed == sum(ev.customer_id is not None for ev in log_events)


@needs_native
@pytest.mark.parametrize("case", sorted(EDGES))
def test_the_decoders_edge_cases(case: str) -> None:
    assert_read_alike(json.dumps(EDGES[case][0]).encode())


def _lines(*lines: dict) -> dict:
    base = {"stock_code": "20000", "description": "MUG", "quantity": 2, "unit_price": 1.5}
    return _doc(lines=[{**base, **ln} for ln in lines])


OWN_EDGES = {
    "repeated line counted once": (_lines({}, {}, {"quantity": 3}), True),
    "same line but the description": (_lines({}, {"description": "CUP"}), True),
    "over 32 lines, repeated ones": (
        _lines(*({"stock_code": f"2{i % 40:04d}"} for i in range(120))), True),
    "max lines, all repeated": (_lines(*({} for _ in range(MAX_LINES))), True),
    "unknown code, by description": (_lines({"stock_code": "ZZ1"}, {"stock_code": "ZZ1",
                                                                     "description": "LONGER"}),
                                     True),
    "non-product codes": (_lines({"stock_code": "POST"}, {"stock_code": "M"}, {}), True),
    "postage only": (_lines({"stock_code": "POST"}), True),
    "zero and negative prices": (_lines({"unit_price": 0}, {"unit_price": -2.5}, {}), True),
    "cancellation": (_doc(invoice_id="C9", lines=_lines({"quantity": -4})["lines"]), True),
    "lower-case cancellation": (_doc(invoice_id="c9"), True),
    "adjustment": (_doc(invoice_id="A9"), True),
    "negative total": (_lines({"quantity": -4}), True),
    "escaped text": (_lines({"description": "CAF\u00c9 \"BIG\"", "stock_code": "2\u00e9"}), True),
    "fraction of a second": (_doc(invoiced_at="2010-01-04T09:00:00.1234"), True),
    "leap day": (_doc(invoiced_at="2012-02-29 23:59:59"), True),
    "before 1970": (_doc(invoiced_at="1969-12-31T23:59:59.999999"), True),
    "a microsecond after 1970 (an exponent in repr: not packed)": (
        _doc(invoiced_at="1970-01-01T00:00:00.000001"), True),
    "1970": (_doc(invoiced_at="1970-01-01T00:00:00"), True),
    "integer customer": (_doc(customer_id=12345), True),
    "guest": (_doc(customer_id=""), True),
    # left to the Python path
    "not a leap year": (_doc(invoiced_at="2011-02-29T09:00:00"), False),
    "year 1800": (_doc(invoiced_at="1800-01-04T09:00:00"), False),
    "non-ASCII first character": (_doc(invoice_id="\u1e9a9"), False),
    "customer id with .0": (_doc(customer_id="17850.0"), False),
    "money beyond the state's range": (_lines({"quantity": 10**6, "unit_price": 999_999}),
                                       False),
    "float quantity": (_line(quantity=2.0), False),
    "the smallest 64-bit quantity": (_line(quantity=-2**63), False),
    "a quantity beyond 64 bits": (_line(quantity=2**64), False),
}


@needs_native
@pytest.mark.parametrize("case", sorted(OWN_EDGES))
def test_own_edge_cases(case: str) -> None:
    doc, native = OWN_EDGES[case]
    assert (assert_read_alike(json.dumps(doc, ensure_ascii=False).encode()) is not None) == native
    assert (assert_read_alike(json.dumps(doc).encode()) is not None) == native  # \u escapes


@needs_native
@pytest.mark.parametrize("raw", [
    json.dumps(_doc()).encode()[:-1] + b', "invoice_id": "2"}',  # a key twice
    json.dumps(_doc()).encode() + b" trailing",
    b"\xef\xbb\xbf" + json.dumps(_doc()).encode(),
    json.dumps(_doc()).encode().replace(b'"1"', b'"\xff"'),
    json.dumps(_doc()).encode().replace(b'"MUG"', b'"\\ud800"'),
    b"[]", b"", b"null",
    # arrays where the contract wants objects (serde's structs would take them in field order)
    b'["9", 7, null, "2010-01-04T09:00:00", [["20000", null, 2, 1.5]]]',
    b'["9", null, null, "2010-01-04T09:00:00", [{"stock_code": "20000", "quantity": 2,'
    b' "unit_price": 1.5}]]',
    b'{"invoice_id": "9", "customer_id": 7, "invoiced_at": "2010-01-04T09:00:00",'
    b' "lines": [["20000", null, 2, 1.5]]}',
    b'{"invoice_id": "9", "customer_id": 7, "invoiced_at": "2010-01-04T09:00:00",'
    b' "lines": [{"stock_code": "20000", "quantity": 2, "unit_price": 1.5},'
    b' ["20000", null, 2, 1.5]]}',
])
def test_bytes_left_to_the_python_path(raw: bytes) -> None:
    assert op_reader(_categories())(raw) is None


@needs_native
def test_a_raising_categoriser_leaves_the_invoice_to_the_python_path() -> None:
    def broken(code: str, desc: str | None) -> int:
        raise RuntimeError("categoriser down")

    read = op_reader(LineCategories(broken, {"20000": 1}))
    assert read(json.dumps(_lines({})).encode()) is not None  # a known code: no call
    assert read(json.dumps(_lines({"stock_code": "ZZ1"})).encode()) is None


@needs_native
def test_unknown_codes_are_asked_once_per_description() -> None:
    asked: list[tuple[str, str | None]] = []

    class Asked(LineCategories):
        def __call__(self, code: str, desc: str | None) -> int:
            asked.append((code, desc))
            return super().__call__(code, desc)

    read = op_reader(Asked(lambda code, desc: 2))
    for _ in range(3):
        read(json.dumps(_lines({"stock_code": "ZZ1"}, {"stock_code": "ZZ1", "description": None},
                               {"stock_code": "ZZ1", "description": "X"})).encode())
    assert asked == [("ZZ1", "MUG"), ("ZZ1", None), ("ZZ1", "X")]


@needs_native
@settings(max_examples=400, deadline=None)
@given(documents)
def test_generated_documents(doc: dict) -> None:
    assert_read_alike(json.dumps(doc).encode())


@needs_native
@settings(max_examples=400, deadline=None)
@given(near_valid)
def test_generated_documents_near_the_limits(doc: dict) -> None:
    assert_read_alike(json.dumps(doc).encode())


@needs_native
def test_a_time_repr_writes_with_an_exponent_is_not_packed() -> None:
    read = op_reader(_categories(), CustomerStore(None, PREFIX).keys)
    assert read(json.dumps(_doc(invoiced_at="1970-01-01T00:00:00.000001")).encode()).packed is None
    assert read(json.dumps(_doc(invoiced_at="1970-01-01T00:00:00.0001")).encode()).packed


@needs_native
@settings(max_examples=200, deadline=None)
@given(near_valid)
def test_generated_documents_as_arrays(doc: dict) -> None:
    """The same documents with the event, or its lines, as arrays of their values."""
    assert_read_alike(json.dumps(list(doc.values())).encode())
    as_rows = {**doc, "lines": [list(line.values()) for line in doc["lines"]]}
    assert_read_alike(json.dumps(as_rows).encode())


@needs_native
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert_read_alike(raw)


@needs_native
@settings(max_examples=400, deadline=None)
@given(near_valid, st.data())
def test_damaged_documents(doc: dict, data: st.DataObject) -> None:
    """Valid-looking documents with one byte changed: read alike or left to Python, never a
    crash (a panic would surface in the worker as an exception)."""
    raw = bytearray(json.dumps(doc, ensure_ascii=False).encode())
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] = data.draw(st.integers(0, 255))
    assert_read_alike(bytes(raw))
