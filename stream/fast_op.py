"""The hot path's reader: an invoice event's raw bytes -> its `InvoiceOp`, in one native call.

`stream/native` (Rust, built by `pip install`) reads the JSON, checks it against the contract's
limits, runs `stream.aggregates.invoice_op`'s line pass and packs the op's script call (as
hiredis packs `CustomerStore`'s, for an op without a score), without a Python object per line:
decoding an invoice into msgspec structs and summing its ~18 lines in Python were ~14 us of
the worker's ~42 us of CPU per invoice. The Python path stays the definition. The reader answers
None for whatever it is not sure of (not UTF-8, a lone surrogate escape, an array for an
object, a time with an offset or a year outside 1900-2200, a customer id such as "17850.0", a
line the categoriser raised on, money beyond the state's range, ...), and the caller then takes
the Python path (`stream.validate.validate`, `invoice_op`), which accepts or names the reason.
The reader may refuse more than the contract, never less, and its figures equal `invoice_op`'s
bit for bit: tests/stream/test_fast_op.py checks both on every invoice of the shipped log, edge
cases and generated documents.

Without the built module (`NATIVE` is False, e.g. no Rust toolchain at install time)
`op_reader` returns None and every invoice takes the Python path, ~25 % slower.

>>> from stream.aggregates import LineCategories, invoice_op
>>> from stream.validate import validate
>>> categories = LineCategories(lambda code, desc: 3, known={"22138": 1})
>>> read = op_reader(categories)
>>> raw = (b'{"invoice_id": "9", "customer_id": 7, "invoiced_at": "2010-01-04T09:00:00",'
...        b' "lines": [{"stock_code": "22138", "quantity": 2, "unit_price": 1.5}]}')
>>> op = read(raw) if read else invoice_op(validate(raw), categories)  # the same op
>>> op.customer_id, op.kind, op.spend, op.category_spend, op.argv()[5]
('7', 'P', 3.0, {1: 3.0}, '1 3000000')
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.invoice import (
    MAX_ABS_PRICE,
    MAX_ABS_QUANTITY,
    MAX_EVENT_BYTES,
    MAX_LINES,
    InvoiceEvent,
    InvoiceLine,
)
from stream.aggregates import MAX_CACHED_LINES, LineCategories
from stream.fast_invoice import field_meta
from stream.store import LUA_APPLY_SHA, MAX_INVOICE_MONEY, MICROS, CustomerStore, InvoiceOp

try:
    from stream._fastop import OpReader as _NativeReader
except ImportError:  # built by `pip install` when cargo is there (pyproject's setuptools-rust)
    _NativeReader = None

#: whether the native reader was built and imported
NATIVE = _NativeReader is not None


class _Guest:
    """A valid invoice without a customer (counted, not stored)."""

    def __repr__(self) -> str:
        return "GUEST"


GUEST = _Guest()

#: what a reader makes of raw bytes: the op, `GUEST`, or None (ask the Python path)
Read = Callable[[bytes], "InvoiceOp | _Guest | None"]


def reader_limits() -> dict[str, float]:
    """The input contract's limits (from the pydantic fields) and the state's money range and
    units, as the native reader takes them."""
    return {
        "max_event_bytes": MAX_EVENT_BYTES,
        "invoice_id_len": field_meta(InvoiceEvent, "invoice_id").max_length,
        "customer_id_len": field_meta(InvoiceEvent, "customer_id").max_length,
        "country_len": field_meta(InvoiceEvent, "country").max_length,
        "stock_code_len": field_meta(InvoiceLine, "stock_code").max_length,
        "description_len": field_meta(InvoiceLine, "description").max_length,
        "max_lines": MAX_LINES,
        "max_abs_quantity": MAX_ABS_QUANTITY,
        "max_abs_price": MAX_ABS_PRICE,
        "max_money": MAX_INVOICE_MONEY,
        "micros": MICROS,
    }


def key_parts(keys: Callable[[str], tuple[str, ...]]) -> list[tuple[str, str]]:
    """Each key of `keys(customer_id)` as (text before, text after) the customer id, so the
    native reader writes the store's keys without a copy of their layout.

    >>> key_parts(lambda c: (f"p:cust:{{{c}}}", f"p:cust:{{{c}}}:inv"))
    [('p:cust:{', '}'), ('p:cust:{', '}:inv')]
    """
    mark = "\x00"  # in no key's fixed text
    parts = [tuple(key.split(mark)) for key in keys(mark)]
    if any(len(p) != 2 for p in parts):
        raise ValueError(f"every key must hold the customer id once: {keys(mark)!r}")
    return parts  # type: ignore[return-value]


def op_reader(categories: LineCategories,
              keys: Callable[[str], tuple[str, ...]] | None = None) -> Read | None:
    """A reader whose categories come from `categories` (its known codes, and a call for any
    other code, cached per code and description), its ops' script calls packed with the keys
    `keys(customer_id)` names (a `CustomerStore.keys`; default: an unprefixed store's); None
    without the native module."""
    if _NativeReader is None:
        return None
    native = _NativeReader(dict(categories.by_code), categories, reader_limits(),
                           MAX_CACHED_LINES, key_parts(keys or CustomerStore(None, "").keys),
                           LUA_APPLY_SHA).read
    guest = GUEST

    def read(raw: bytes) -> InvoiceOp | _Guest | None:
        found = native(raw)
        if found is None:
            return None
        if len(found) == 1:
            return guest
        cid, iid, ts, kind, spend, items, cats, packed = found
        return InvoiceOp(cid, iid, ts, kind, spend, items, cats, "", "", 0.0, packed)

    return read
