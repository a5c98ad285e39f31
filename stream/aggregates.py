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
>>> op = invoice_op(ev, LineCategories(lambda code, desc: 0))
>>> op.kind, op.spend, op.items, op.category_spend
('C', -6.0, -2, {0: -6.0})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from offline.codes import is_product_code
from stream.store import InvoiceOp
from stream.validate import Invoice

_EPOCH = datetime(1970, 1, 1)


def event_time(when: datetime) -> float:
    """Epoch seconds; a naive time (the logs have no time zone) is read as UTC.

    >>> from datetime import UTC
    >>> when = datetime(2010, 12, 1, 8, 26, 59, 999)
    >>> event_time(when) == when.replace(tzinfo=UTC).timestamp()
    True
    """
    if when.tzinfo is None:  # the same sum `timestamp()` does, without a copy with a time zone
        return (when - _EPOCH).total_seconds()
    return when.timestamp()


class LineCategories:
    """A line's product category for the state's category spend: `category_of` for product
    codes, -1 for the rest (`offline.codes.is_product_code`), one dictionary lookup per line.

    `known` maps the stock codes whose category the categoriser knows (whatever the
    description) to it; other codes are looked up once per (code, description) and cached.
    A plain lookup by code is ~2x cheaper than a cached call keyed by (code, description), and
    the lines were ~18 % of the worker's time (py-spy).

    >>> categories = LineCategories(lambda code, desc: 3, known={"22138": 1})
    >>> categories("22138", "BAKING SET"), categories("85048", "GLASS BALL")
    (1, 3)
    >>> categories("POST", "POSTAGE"), categories.by_code["POST"]
    (-1, -1)
    """

    def __init__(self, category_of: Callable[[str, str | None], int],
                 known: Mapping[str, int] | None = None) -> None:
        #: codes whose category does not depend on the description: known products, and every
        #: non-product code (-1)
        self.by_code: dict[str, int] = {
            code: int(cat) for code, cat in (known or {}).items() if is_product_code(code)}
        self._max_by_code = len(self.by_code) + MAX_CACHED_LINES
        self._category_of = category_of
        self._by_line: dict[tuple[str, str | None], int] = {}

    def __call__(self, stock_code: str, description: str | None) -> int:
        cat = self.by_code.get(stock_code)
        if cat is not None:
            return cat
        if not is_product_code(stock_code):
            if len(self.by_code) < self._max_by_code:  # a flood of odd codes stays bounded
                self.by_code[stock_code] = -1
            return -1
        key = (stock_code, description)
        cat = self._by_line.get(key)
        if cat is None:
            if len(self._by_line) >= MAX_CACHED_LINES:
                self._by_line.clear()  # unseen products are few; a flood of them costs lookups
            cat = self._by_line[key] = int(self._category_of(stock_code, description))
        return cat


#: at most this many (unseen code, description) pairs, and non-product codes, are cached
MAX_CACHED_LINES = 100_000


def invoice_op(ev: Invoice, categories: LineCategories) -> InvoiceOp:
    """The Lua script's arguments for `ev` (a customer's invoice), in ONE pass over its lines.

    `categories`: the lines' product categories (negative for a non-product code). The pass
    applies `offline.events.product_lines`'s rules itself
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
    # the contract's is_cancellation / is_adjustment (`invoice_id.upper().startswith(...)`)
    # from the id's first character alone: str.upper maps character by character
    head = ev.invoice_id[:1].upper()
    adjustment = head.startswith("A")
    lines = () if adjustment else ev.lines  # an adjustment counts toward nothing
    by_code = categories.by_code.get
    spent = cats.get
    for line in dict.fromkeys(lines):  # a repeated line once (lines are frozen, hashable)
        price = line.unit_price
        if price <= 0:
            continue
        code = line.stock_code
        cat = by_code(code)
        if cat is None:
            cat = categories(code, line.description)
        if cat < 0:
            continue
        quantity = line.quantity
        amount = quantity * price
        total += amount
        items += quantity
        cats[cat] = spent(cat, 0.0) + amount
    if head.startswith("C"):
        kind = "C"
    elif adjustment:
        kind = "A"
    else:
        kind = "P" if total > 0 else "O"
    counted = kind == "P" or kind == "C"  # == counts_toward_spend(ev)
    # positional: keywords cost a dict per call
    return InvoiceOp(ev.customer_id, ev.invoice_id, event_time(ev.invoiced_at), kind,
                     float(total) if counted else 0.0, items if counted else 0,
                     cats if counted else {})
