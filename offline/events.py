"""Line-level log -> invoice events, and the first-purchase rule both batch and stream apply.

A customer's first purchase is their earliest ``(invoiced_at, invoice_id)`` invoice for which
:func:`is_first_purchase_candidate` is True. The rule looks at the single invoice only, after the
same line cleaning the feature function applies (:func:`product_lines`), so a stream that sees
invoices one by one in time order reaches exactly the batch answer.

>>> from datetime import datetime
>>> from schemas.invoice import InvoiceEvent, InvoiceLine
>>> ev = InvoiceEvent(invoice_id="536365", customer_id="17850", country="United Kingdom",
...     invoiced_at=datetime(2010, 12, 1, 8, 26),
...     lines=(InvoiceLine(stock_code="POST", quantity=1, unit_price=18.0),))
>>> is_first_purchase_candidate(ev)   # postage alone is no purchase
False
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
from pydantic import ValidationError

from offline.codes import is_product_code
from schemas.invoice import InvoiceEvent, InvoiceLine

log = logging.getLogger(__name__)


def product_lines(ev: InvoiceEvent) -> list[InvoiceLine]:
    """The invoice's clean product lines: no non-product codes, no duplicate lines, price > 0."""
    seen: set[tuple[str, str | None, int, float]] = set()
    out: list[InvoiceLine] = []
    for line in ev.lines:
        if line.unit_price <= 0 or not is_product_code(line.stock_code):
            continue
        key = (line.stock_code, line.description, line.quantity, line.unit_price)
        if key in seen:
            continue
        seen.add(key)
        out.append(line)
    return out


def clean_total(ev: InvoiceEvent) -> float:
    """Net value of the clean product lines (negative for a cancellation).

    Added left to right, as the stream's line pass adds them (`stream.aggregates`): from
    Python 3.12 on, `sum()` of floats compensates rounding, and a nearly cancelling invoice
    could then be a purchase on one side and not on the other."""
    total: float = 0
    for line in product_lines(ev):
        total += line.quantity * line.unit_price
    return float(total)


def is_first_purchase_candidate(ev: InvoiceEvent) -> bool:
    """Not a cancellation (``C``), not an adjustment (``A``), positive clean total."""
    if ev.is_cancellation or ev.is_adjustment:
        return False
    return clean_total(ev) > 0


def counts_toward_spend(ev: InvoiceEvent) -> bool:
    """Purchases and cancellations count toward a customer's spend; adjustments never."""
    return not ev.is_adjustment and (ev.is_cancellation or is_first_purchase_candidate(ev))


def _opt(v: object) -> str | None:
    return None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v)


def iter_invoices(df: pd.DataFrame) -> Iterator[InvoiceEvent]:
    """Yield one :class:`InvoiceEvent` per invoice, sorted by ``(invoiced_at, invoice_id)``.

    ``df`` is a frame from :func:`offline.load.read_log`. Invoice-level fields come from the
    invoice's first line; an invoice the contract rejects (e.g. a quantity beyond its limits) is
    logged and skipped.
    """
    if df.empty:
        return
    d = df.sort_values(["invoiced_at", "invoice_id"], kind="stable")
    inv = d["invoice_id"].to_numpy(dtype=object)
    codes = d["stock_code"].to_numpy(dtype=object)
    desc = d["description"].astype(object).where(d["description"].notna(), None).to_numpy()
    qty = d["quantity"].to_numpy(dtype=np.int64).tolist()
    price = d["unit_price"].to_numpy(dtype=np.float64).tolist()
    cust = d["customer_id"].astype(object).where(d["customer_id"].notna(), None).to_numpy()
    country = d["country"].astype(object).where(d["country"].notna(), None).to_numpy()
    when = list(d["invoiced_at"].dt.to_pydatetime())
    starts = np.flatnonzero(np.r_[True, inv[1:] != inv[:-1]])
    ends = np.r_[starts[1:], len(d)]
    skipped = 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        try:
            lines = tuple(
                InvoiceLine(
                    stock_code=codes[i], description=_opt(desc[i]),
                    quantity=qty[i], unit_price=price[i],
                )
                for i in range(s, e)
            )
            yield InvoiceEvent(
                invoice_id=inv[s], customer_id=_opt(cust[s]), country=_opt(country[s]),
                invoiced_at=when[s], lines=lines,
            )
        except ValidationError as exc:
            skipped += 1
            log.warning("event=invoice_skipped invoice=%s reason=%s", inv[s],
                        str(exc).splitlines()[0])
    if skipped:
        log.warning("event=invoices_skipped count=%d", skipped)


def invoices_from_lines(df: pd.DataFrame) -> list[InvoiceEvent]:
    """All invoices of a normalised log as events, sorted by ``(invoiced_at, invoice_id)``."""
    return list(iter_invoices(df))


def first_purchases(events: Iterable[InvoiceEvent]) -> dict[str, InvoiceEvent]:
    """customer id -> first purchase, for events sorted by ``(invoiced_at, invoice_id)``."""
    out: dict[str, InvoiceEvent] = {}
    for ev in events:
        if ev.customer_id is None or ev.customer_id in out:
            continue
        if is_first_purchase_candidate(ev):
            out[ev.customer_id] = ev
    return out

