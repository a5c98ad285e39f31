"""Validate raw Kafka values into invoice events; anything else becomes a reasoned rejection.

The worker reads raw bytes (no deserialiser on the consumer) so that bad input reaches this module
instead of crashing a deserialiser. `validate` never raises. A valid event comes back as a
`stream.fast_invoice.FastInvoice` when the fast decoder accepts it, else the contract
(`InvoiceEvent`) decides: an `InvoiceEvent`, or the reason it is not one.

>>> validate(b'{"invoice_id": "1", "customer_id": "7", "invoiced_at": "2010-01-04T09:00:00",'
...          b' "lines": [{"stock_code": "A", "quantity": 2, "unit_price": 1.5}]}').customer_id
'7'
>>> validate(b"\\xff").reason, validate(b"{").reason, validate(b"[]").reason
('not_utf8', 'not_json', 'wrong_type')
>>> validate(b'{"invoice_id": "1", "invoiced_at": "2010-01-04", "lines": []}').reason
'no_lines'
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from schemas.invoice import MAX_EVENT_BYTES, MAX_LINES, InvoiceEvent
from stream.fast_invoice import FastInvoice, decode

#: A valid invoice event as the stream reads it (the same attributes either way).
Invoice = InvoiceEvent | FastInvoice


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a raw value is not an `InvoiceEvent` (a `schemas.dead_letter.Reason`)."""

    reason: str
    error: str


def validate(raw: bytes | None) -> Invoice | Rejection:
    """Parse and check one raw event value."""
    if raw is None:
        return Rejection("not_json", "empty value (tombstone)")
    if len(raw) > MAX_EVENT_BYTES:
        return Rejection("too_large", f"{len(raw)} bytes > MAX_EVENT_BYTES={MAX_EVENT_BYTES}")
    fast = decode(raw)
    if fast is not None:
        return fast
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", str(exc))
    try:
        return InvoiceEvent.model_validate_json(text)
    except ValidationError as exc:
        return Rejection(_reason(exc), _summary(exc))


#: Most specific first: the first reason any error maps to wins.
_PRIORITY = (
    "not_json",
    "non_finite",
    "too_many_lines",
    "missing_field",
    "wrong_type",
    "invalid",
    "no_lines",
)


def _reason(exc: ValidationError) -> str:
    found = set()
    for err in exc.errors(include_url=False):
        kind, loc = err["type"], err["loc"]
        if kind == "json_invalid":
            found.add("not_json")
        elif kind == "finite_number":
            found.add("non_finite")
        elif loc == ("lines",) and kind == "too_long":
            found.add("too_many_lines")
        elif loc == ("lines",) and kind == "too_short":
            found.add("no_lines")
        elif kind == "missing":
            found.add("missing_field")
        elif kind.endswith(("_type", "_parsing")) or kind == "model_type":
            found.add("wrong_type")
        else:
            found.add("invalid")
    # An invalid line also empties the tuple ("too_short"): it is only "no_lines" when alone.
    return next((r for r in _PRIORITY if r in found), "invalid")


def _summary(exc: ValidationError, limit: int = 5) -> str:
    errs = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in errs[:limit]]
    if len(errs) > limit:
        parts.append(f"... {len(errs) - limit} more")
    return "; ".join(parts)


__all__ = ["MAX_LINES", "Invoice", "Rejection", "validate"]
