"""The dead-letter contract: an input the worker could not accept, kept with the reason.

Topic `invoices-dlq`, key = the source key (unchanged bytes), value = this model as JSON.
The raw value is kept byte for byte in base64 (it may not be UTF-8).

>>> dl = DeadLetter.from_raw(b"\\xff{", reason="not_utf8", error="invalid start byte",
...     topic="invoices", partition=3, offset=42)
>>> dl.raw_value(), dl.reason, dl.source_offset
(b'\\xff{', 'not_utf8', 42)
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Why an event was dead-lettered. The README and the metrics use these names.
Reason = Literal[
    "too_large",  # more bytes than schemas.invoice.MAX_EVENT_BYTES
    "not_utf8",
    "not_json",
    "non_finite",  # NaN / Infinity / a number beyond float range
    "too_many_lines",  # more lines than schemas.invoice.MAX_LINES
    "no_lines",
    "missing_field",
    "wrong_type",
    "invalid",  # any other schema violation (ranges, lengths, unknown fields)
    "unscorable",  # valid, but the model bundle raised on this first purchase
]
REASONS: tuple[str, ...] = Reason.__args__  # type: ignore[attr-defined]


class DeadLetter(BaseModel):
    """An event the worker refused, with enough context to find and replay it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Reason
    error: str = Field(max_length=2000, description="the validator's message, shortened")
    raw_value_b64: str = Field(description="the event value exactly as received, base64")
    source_topic: str
    source_partition: int
    source_offset: int
    dead_lettered_at: datetime

    @classmethod
    def from_raw(
        cls, raw: bytes, *, reason: str, error: str, topic: str, partition: int, offset: int
    ) -> DeadLetter:
        return cls(
            reason=reason,  # type: ignore[arg-type]
            error=error[:2000],
            raw_value_b64=base64.b64encode(raw).decode("ascii"),
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            dead_lettered_at=datetime.now(UTC),
        )

    def raw_value(self) -> bytes:
        return base64.b64decode(self.raw_value_b64)
