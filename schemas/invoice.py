"""The input contract: one invoice event per invoice, its lines inside.

Topic `invoices`, key = customer id (UTF-8), value = this model as JSON.

>>> ev = InvoiceEvent.model_validate_json(
...     '{"invoice_id": "489434", "customer_id": "13085", "country": "United Kingdom",'
...     ' "invoiced_at": "2009-12-01T07:45:00", "lines": [{"stock_code": "85048",'
...     ' "description": "GLASS BALL", "quantity": 12, "unit_price": 6.95}]}'
... )
>>> ev.is_cancellation, round(ev.total, 2)
(False, 83.4)
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

#: Documented limits: an event beyond them is dead-lettered, never half-processed.
MAX_LINES = 2_000
MAX_EVENT_BYTES = 1_000_000
MAX_ABS_QUANTITY = 1_000_000
MAX_ABS_PRICE = 1_000_000.0


def customer_id_text(v: object) -> object:
    """A customer id as its text: "17850.0" (the older UCI file stores ids as floats) and 17850
    both mean "17850"; "" means no customer. Anything else is returned for the type check.

    >>> customer_id_text(17850), customer_id_text("17850.0"), customer_id_text("")
    ('17850', '17850', None)
    """
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise ValueError("customer_id must be a string or an integer")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError(f"customer_id {v!r} is not an integer id")
        return str(int(v))
    if isinstance(v, str) and v.endswith(".0") and v[:-2].isdigit():
        return v[:-2]
    return v


class InvoiceLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    stock_code: str = Field(min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=500)
    quantity: int = Field(ge=-MAX_ABS_QUANTITY, le=MAX_ABS_QUANTITY)
    unit_price: float = Field(ge=-MAX_ABS_PRICE, le=MAX_ABS_PRICE)

    @field_validator("quantity", "unit_price", mode="before")
    @classmethod
    def _numbers_only(cls, v: object) -> object:
        # pydantic's lax mode would read JSON true as 1 and "12" as 12; a quantity is a number.
        if isinstance(v, (bool, str, bytes)):
            raise PydanticCustomError("number_type", "Input should be a number, not {kind}",
                                      {"kind": type(v).__name__})
        return v


class InvoiceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    invoice_id: str = Field(min_length=1, max_length=32)
    customer_id: str | None = Field(default=None, max_length=32)
    country: str | None = Field(default=None, max_length=64)
    invoiced_at: datetime
    lines: tuple[InvoiceLine, ...] = Field(min_length=1, max_length=MAX_LINES)

    @field_validator("customer_id", mode="before")
    @classmethod
    def _customer_id_as_text(cls, v: object) -> object:
        return customer_id_text(v)

    @property
    def is_cancellation(self) -> bool:
        return self.invoice_id.upper().startswith("C")

    @property
    def is_adjustment(self) -> bool:
        return self.invoice_id.upper().startswith("A")

    @property
    def total(self) -> float:
        return sum(line.quantity * line.unit_price for line in self.lines)
