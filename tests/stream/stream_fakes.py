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
        self.calls = 0  # predict calls: one per micro-batch

    def category_of(self, stock_code: str, description: str | None) -> int:
        return zlib.crc32(stock_code.encode()) % self.n_categories

    def features(self, invoices: list[InvoiceEvent]) -> pd.DataFrame:
        """One row per invoice, in order (like the real bundle)."""
        if any(line.stock_code == "BOOM" for ev in invoices for line in ev.lines):
            raise ValueError("the model cannot score BOOM")
        return pd.DataFrame(
            [{"total": clean_total(ev), "n_lines": float(len(product_lines(ev)))}
             for ev in invoices], columns=["total", "n_lines"],
        )

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        total = features["total"]
        seg = (total.astype(int) % 3).astype(int)
        return pd.DataFrame({
            "segment": seg, "segment_label": [f"seg{s}" for s in seg],
            "p_repeat": total / (total + 100.0), "expected_orders": 1.0 + total / 1000.0,
            "expected_spend": 2.5 * total, "model_version": self.model_version,
        })

    def predict_columns(self, features: pd.DataFrame) -> dict[str, list]:
        pred = self.predict(features)
        return {c: pred[c].tolist() for c in pred.columns}

    def score_invoices(self, invoices: list[InvoiceEvent]) -> list[dict]:
        """The batch path: first purchases in the list, scored."""
        firsts = list(first_purchases(invoices).values())
        pred = self.predict(self.features(firsts)).to_dict("records")
        return [{"customer_id": ev.customer_id, "invoice_id": ev.invoice_id,
                 "first_purchase_at": ev.invoiced_at.isoformat(), **p}
                for ev, p in zip(firsts, pred, strict=True)]


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
