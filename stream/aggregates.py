"""What one invoice adds to its customer's state: the definitions of the net figures.

The same rules as the batch side (`offline.events`): only clean product lines count
(`product_lines`), adjustments (`A`) count toward nothing, a cancellation (`C`) subtracts.

- kind: "P" a purchase (`is_first_purchase_candidate`), "C" a cancellation,
  "A" an adjustment, "O" anything else (e.g. postage alone)
- spend: `clean_total` when `counts_toward_spend`, else 0
- items: the quantities of the clean product lines (same condition)
- category spend: spend of those lines by their product category

>>> from datetime import datetime
>>> from schemas.invoice import InvoiceEvent, InvoiceLine
>>> ev = InvoiceEvent(invoice_id="C1", customer_id="7", invoiced_at=datetime(2010, 1, 1),
...     lines=(InvoiceLine(stock_code="85048", quantity=-2, unit_price=3.0),
...            InvoiceLine(stock_code="POST", quantity=-1, unit_price=18.0)))
>>> op = invoice_op(ev, product_category(lambda code, desc: 0))
>>> op.kind, op.spend, op.items, op.category_spend
('C', -6.0, -2, {0: -6.0})
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

from offline.codes import is_product_code
from stream.store import InvoiceOp
from stream.validate import Invoice


def event_time(when: datetime) -> float:
    """Epoch seconds; a naive time (the logs have no time zone) is read as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def product_category(
    category_of: Callable[[str, str | None], int],
) -> Callable[[str, str | None], int]:
    """`category_of` for product codes, -1 for the rest (`offline.codes.is_product_code`),
    cached: one lookup per line.

    >>> line_category = product_category(lambda code, desc: 3)
    >>> line_category("85048", "GLASS BALL"), line_category("POST", "POSTAGE")
    (3, -1)
    """

    @lru_cache(maxsize=100_000)
    def line_category(stock_code: str, description: str | None) -> int:
        return int(category_of(stock_code, description)) if is_product_code(stock_code) else -1

    return line_category


def invoice_op(ev: Invoice, line_category: Callable[[str, str | None], int]) -> InvoiceOp:
    """The Lua script's arguments for `ev` (a customer's invoice), in ONE pass over its lines.

    `line_category(stock_code, description)`: a product's category, negative for a non-product
    code (see `product_category`). The pass applies `offline.events.product_lines`'s rules itself
    (price > 0, a product code, a repeated line counted once): three passes over the lines
    (clean lines, kind, figures) were ~15 % of the worker's time per invoice.
    tests/stream/test_aggregates.py checks the kind against `is_first_purchase_candidate` and
    the figures against `clean_total` and `product_lines` on the shipped log. A first
    purchase's score is attached later.
    """
    assert ev.customer_id is not None, "guests have no state"
    total: float = 0
    items = 0
    cats: dict[int, float] = {}
    lines = () if ev.is_adjustment else ev.lines  # an adjustment counts toward nothing
    for line in dict.fromkeys(lines):  # a repeated line once (lines are frozen, hashable)
        price = line.unit_price
        if price <= 0:
            continue
        cat = line_category(line.stock_code, line.description)
        if cat < 0:
            continue
        quantity = line.quantity
        amount = quantity * price
        total += amount
        items += quantity
        cats[cat] = cats.get(cat, 0.0) + amount
    if ev.is_cancellation:
        kind = "C"
    elif ev.is_adjustment:
        kind = "A"
    else:
        kind = "P" if total > 0 else "O"
    counted = kind in ("P", "C")  # == counts_toward_spend(ev)
    return InvoiceOp(
        customer_id=ev.customer_id,
        invoice_id=ev.invoice_id,
        ts=event_time(ev.invoiced_at),
        kind=kind,
        spend=float(total) if counted else 0.0,
        items=items if counted else 0,
        category_spend=cats if counted else {},
    )
