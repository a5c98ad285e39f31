from __future__ import annotations

from datetime import datetime

import pandas as pd

from offline.events import first_purchases, invoices_from_lines, is_first_purchase_candidate
from offline.load import normalise
from schemas.invoice import InvoiceEvent, InvoiceLine


def _ev(invoice: str, lines: list[tuple[str, int, float]]) -> InvoiceEvent:
    return InvoiceEvent(invoice_id=invoice, customer_id="1", country="United Kingdom",
                        invoiced_at=datetime(2010, 1, 1),
                        lines=tuple(InvoiceLine(stock_code=c, quantity=q, unit_price=p)
                                    for c, q, p in lines))


def test_events_grouped_and_sorted(tiny_raw: pd.DataFrame) -> None:
    events = invoices_from_lines(normalise(tiny_raw))
    keys = [(e.invoiced_at, e.invoice_id) for e in events]
    assert keys == sorted(keys)
    assert len(events) == tiny_raw["Invoice"].nunique()
    by_id = {e.invoice_id: e for e in events}
    assert len(by_id["500002"].lines) == 3  # the raw event keeps the duplicate line
    assert by_id["500002"].customer_id == "12345"
    assert by_id["500006"].customer_id is None


def test_candidate_rule() -> None:
    assert is_first_purchase_candidate(_ev("1", [("22138", 1, 2.0)]))
    assert not is_first_purchase_candidate(_ev("C1", [("22138", -1, 2.0)]))
    assert not is_first_purchase_candidate(_ev("A1", [("22138", 1, 2.0)]))
    assert not is_first_purchase_candidate(_ev("2", [("POST", 1, 18.0)]))
    assert not is_first_purchase_candidate(_ev("3", [("22138", 1, 0.0)]))
    assert not is_first_purchase_candidate(_ev("4", [("22138", 1, 2.0), ("22139", -2, 2.0)]))


def test_first_purchase_skips_postage_only_invoice(tiny_raw: pd.DataFrame) -> None:
    first = first_purchases(invoices_from_lines(normalise(tiny_raw)))
    assert first["12345"].invoice_id == "500002"
    assert first["17850"].invoice_id == "500005"
    assert set(first) == {"12345", "17850"}
