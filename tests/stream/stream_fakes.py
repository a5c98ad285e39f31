"""A tiny deterministic stand-in for the offline model bundle (agent tests need no training)."""

from __future__ import annotations

import json
import zlib

import pandas as pd

from offline.events import clean_total, first_purchases, product_lines
from schemas.invoice import InvoiceEvent


class FakeBundle:
    model_version = "fake-1"
    horizon_days = 365
    n_categories = 4

    def __init__(self) -> None:
        self.calls = 0  # score_invoices calls: one per micro-batch

    def category_of(self, stock_code: str, description: str | None) -> int:
        return zlib.crc32(stock_code.encode()) % self.n_categories

    def features(self, invoices: list[InvoiceEvent]) -> pd.DataFrame:
        firsts = first_purchases(invoices)
        return pd.DataFrame(
            [{"customer_id": cid, "total": clean_total(ev), "n_lines": len(product_lines(ev))}
             for cid, ev in firsts.items()]
        )

    def score_invoices(self, invoices: list[InvoiceEvent]) -> list[dict]:
        self.calls += 1
        rows = []
        for cid, ev in first_purchases(invoices).items():
            if any(line.stock_code == "BOOM" for line in ev.lines):
                raise ValueError("the model cannot score BOOM")
            total = clean_total(ev)
            rows.append({
                "customer_id": cid, "invoice_id": ev.invoice_id,
                "first_purchase_at": ev.invoiced_at, "segment": int(total) % 3,
                "segment_label": f"seg{int(total) % 3}", "p_repeat": total / (total + 100.0),
                "expected_orders": 1.0 + total / 1000.0, "expected_spend": 2.5 * total,
                "model_version": self.model_version,
            })
        return rows


def invoice_json(invoice_id: str, customer_id: str | None, when: str = "2010-01-04T09:00:00",
                 lines: list[tuple[str, int, float]] | None = None, **extra: object) -> bytes:
    """An invoice event's JSON bytes; lines as (stock_code, quantity, unit_price)."""
    lines = lines if lines is not None else [("85048", 2, 6.95), ("22423", 1, 12.75)]
    doc = {
        "invoice_id": invoice_id, "customer_id": customer_id, "country": "United Kingdom",
        "invoiced_at": when,
        "lines": [{"stock_code": c, "description": f"item {c}", "quantity": q, "unit_price": p}
                  for c, q, p in lines],
        **extra,
    }
    return json.dumps(doc).encode()
