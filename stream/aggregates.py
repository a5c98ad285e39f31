"""What one invoice adds to its customer's state: the definitions of the net figures.

The same rules as the batch side (`offline.events`): only clean product lines count
(`product_lines`), adjustments (`A`) count toward nothing, a cancellation (`C`) subtracts.

- kind: "P" a purchase (`is_first_purchase_candidate`), "C" a cancellation,
  "A" an adjustment, "O" anything else (e.g. postage alone)
- spend: `clean_total` when `counts_toward_spend`, else 0
- items: the quantities of the clean product lines (same condition)
- category spend: spend of those lines by `category_of(stock_code, description)`

>>> from datetime import datetime
>>> from schemas.invoice import InvoiceEvent, InvoiceLine
>>> ev = InvoiceEvent(invoice_id="C1", customer_id="7", invoiced_at=datetime(2010, 1, 1),
...     lines=(InvoiceLine(stock_code="85048", quantity=-2, unit_price=3.0),
...            InvoiceLine(stock_code="POST", quantity=-1, unit_price=18.0)))
>>> op = invoice_op(ev, category_of=lambda code, desc: 0)
>>> op.kind, op.spend, op.items, op.category_spend
('C', -6.0, -2, {0: -6.0})
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from offline.events import product_lines
from stream.store import InvoiceOp
from stream.validate import Invoice


def event_time(when: datetime) -> float:
    """Epoch seconds; a naive time (the logs have no time zone) is read as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def invoice_op(
    ev: Invoice,
    category_of: Callable[[str, str | None], int],
) -> InvoiceOp:
    """The Lua script's arguments for `ev` (a customer's invoice), with ONE pass over its clean
    lines: the kind (`offline.events.is_first_purchase_candidate` is "P"; tests/stream/
    test_aggregates.py checks both agree on the shipped log) and, when it counts, the figures.
    A first purchase's score is attached later (`with_score`)."""
    assert ev.customer_id is not None, "guests have no state"
    lines = product_lines(ev)
    amounts = [line.quantity * line.unit_price for line in lines]
    total = float(sum(amounts))
    if ev.is_cancellation:
        kind = "C"
    elif ev.is_adjustment:
        kind = "A"
    else:
        kind = "P" if total > 0 else "O"
    spend, items = 0.0, 0
    cats: dict[int, float] = {}
    if kind in ("P", "C"):  # == counts_toward_spend(ev)
        spend = total
        for line, amount in zip(lines, amounts, strict=True):
            items += line.quantity
            cat = int(category_of(line.stock_code, line.description))
            cats[cat] = cats.get(cat, 0.0) + amount
    return InvoiceOp(
        customer_id=ev.customer_id,
        invoice_id=ev.invoice_id,
        ts=event_time(ev.invoiced_at),
        kind=kind,
        spend=spend,
        items=int(items),
        category_spend=cats,
    )
