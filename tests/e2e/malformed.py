"""Malformed invoice events, generated with hypothesis from real ones.

`malformed(base)` draws one real event's JSON from `base` and breaks it in one of the ways the
issue lists, returning `(value, kind, expected dead-letter reason)`:

- truncated JSON (a proper prefix of the object)             -> not_json
- non-UTF-8 bytes inserted anywhere                          -> not_utf8
- a field of the wrong JSON type                             -> wrong_type
- a huge quantity or price, either sign, beyond the limits   -> invalid
  (or a number literal beyond float range                    -> non_finite)
- a negative quantity or price beyond the limits             -> invalid
- missing lines (no `lines`, an empty list) or a missing field -> missing_field / no_lines

The expectations are the contract's (schemas.invoice, schemas.dead_letter), written down here
independently of stream.validate; the test compares them with what the worker dead-letters.
"""

from __future__ import annotations

import json
import string

from hypothesis import strategies as st

from schemas.invoice import MAX_ABS_PRICE, MAX_ABS_QUANTITY

KINDS = ("truncated", "not_utf8", "wrong_type", "huge", "negative", "missing")

#: byte sequences that are never valid UTF-8
BAD_BYTES = (b"\xff", b"\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xed\xa0\x80",
             b"\xf8\x88\x80\x80\x80", b"\x80", b"caf\xe9")

_NOT_NUMBERS = {"nan", "inf", "infinity", "e"}
_words = st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=12).filter(
    lambda s: s.strip().lower() not in _NOT_NUMBERS)
_containers = st.one_of(st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
_numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))

#: field -> JSON values of a type that field never accepts (pydantic's lax mode does coerce
#: "12" -> 12 and true -> 1 for ints, and epoch numbers for datetimes: those are not here)
WRONG = {
    "invoice_id": st.one_of(_numbers, _containers, st.booleans(), st.none()),
    "stock_code": st.one_of(_numbers, _containers, st.booleans(), st.none()),
    "customer_id": _containers,
    "invoiced_at": st.one_of(_words.map(lambda s: "not a date " + s), _containers, st.none()),
    "lines": st.one_of(_words, _numbers, st.dictionaries(st.text(max_size=4), st.integers(),
                                                         max_size=2), st.none()),
    "quantity": st.one_of(_words, _containers, st.none()),
    "unit_price": st.one_of(_words, _containers, st.none()),
}
LINE_FIELDS = ("stock_code", "quantity", "unit_price")


def _dump(doc: dict) -> bytes:
    return json.dumps(doc).encode()


@st.composite
def malformed(draw: st.DrawFn, base: list[bytes]) -> tuple[bytes, str, str]:
    raw = draw(st.sampled_from(base))
    kind = draw(st.sampled_from(KINDS))
    if kind == "truncated":
        return raw[: draw(st.integers(0, len(raw) - 1))], kind, "not_json"
    if kind == "not_utf8":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.sampled_from(BAD_BYTES)) + raw[at:], kind, "not_utf8"
    doc = json.loads(raw)
    line = doc["lines"][draw(st.integers(0, len(doc["lines"]) - 1))]
    if kind == "wrong_type":
        field = draw(st.sampled_from(sorted(WRONG)))
        value = draw(WRONG[field])
        (line if field in LINE_FIELDS else doc)[field] = value
        return _dump(doc), f"{kind}:{field}", "wrong_type"
    if kind in ("huge", "negative"):
        field = draw(st.sampled_from(["quantity", "unit_price"]))
        sign = -1 if kind == "negative" else draw(st.sampled_from([1, -1]))
        if field == "unit_price" and draw(st.booleans()):
            # a literal beyond float range parses as infinity
            exp = draw(st.integers(309, 4000))
            line[field] = 0.5
            text = _dump(doc).replace(b'"unit_price": 0.5', f'"unit_price": {sign}e{exp}'.encode(),
                                      1)
            return text, f"{kind}:overflow", "non_finite"
        if field == "quantity":
            line[field] = sign * draw(st.integers(MAX_ABS_QUANTITY + 1, 10**40))
        else:
            line[field] = sign * draw(st.floats(MAX_ABS_PRICE * (1 + 1e-9), 1e300))
        return _dump(doc), f"{kind}:{field}", "invalid"
    # missing
    what = draw(st.sampled_from(["lines", "empty_lines", "invoice_id", "invoiced_at",
                                 *LINE_FIELDS]))
    if what == "empty_lines":
        doc["lines"] = []
        return _dump(doc), f"{kind}:{what}", "no_lines"
    (line if what in LINE_FIELDS else doc).pop(what)
    return _dump(doc), f"{kind}:{what}", "missing_field"
