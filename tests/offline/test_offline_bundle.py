from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

import offline
from offline.bundle import BundleError
from offline.events import first_purchases, invoices_from_lines
from offline.load import read_log
from offline.score import score_log


def _dir(trained) -> Path:
    return trained.artifacts["out"]


@pytest.fixture(scope="module")
def firsts(trained, slice_path):
    events = invoices_from_lines(read_log(slice_path).query("customer_id.notna()"))
    return list(first_purchases(events).values())


def test_round_trip(trained, firsts) -> None:
    loaded = offline.load_bundle(_dir(trained))
    assert loaded.model_version == trained.bundle.model_version
    assert len(loaded.model_version) == 12
    a = loaded.score_invoices(firsts[:50])
    b = trained.bundle.score_invoices(firsts[:50])
    assert a == b
    assert loaded.horizon_days == 365
    assert loaded.n_categories == trained.bundle.n_categories


def test_score_rows_shape(trained, firsts) -> None:
    rows = offline.load_bundle(_dir(trained)).score_invoices(firsts[:3])
    assert set(rows[0]) == {"customer_id", "invoice_id", "first_purchase_at", "segment",
                            "segment_label", "p_repeat", "expected_orders", "expected_spend",
                            "model_version"}
    r = rows[0]
    assert isinstance(r["segment"], int) and isinstance(r["segment_label"], str)
    assert 0.0 <= r["p_repeat"] <= 1.0 and r["expected_spend"] >= 0
    assert not r["customer_id"].endswith(".0")


def test_one_by_one_equals_batch(trained, firsts) -> None:
    b = offline.load_bundle(_dir(trained))
    some = firsts[::3][:150]
    batch = b.score_invoices(some)
    single = [row for ev in some for row in b.score_invoices([ev])]
    assert batch == single


def test_features_then_predict_is_score(trained, firsts) -> None:
    b = trained.bundle
    pred = b.predict(b.features(firsts[:20]))
    rows = b.score_invoices(firsts[:20])
    assert pred["expected_spend"].tolist() == [r["expected_spend"] for r in rows]
    assert pred["segment_label"].tolist() == [r["segment_label"] for r in rows]
    columns = b.predict_columns(b.features(firsts[:20]))
    assert list(columns) == list(pred.columns)
    assert all(columns[c] == pred[c].tolist() for c in columns)
    empty = b.predict(b.features([]))
    assert empty.empty and list(empty.columns) == list(pred.columns)
    assert b.score_invoices([]) == []


def test_no_leak_cut_after_first_invoice(trained, slice_path, tmp_path) -> None:
    """Scoring a log cut right after each customer's first invoice gives the full-log scores."""
    df = read_log(slice_path)
    customers = df[df["customer_id"].notna()]
    first = {c: (e.invoiced_at, e.invoice_id) for c, e in
             first_purchases(invoices_from_lines(customers)).items()}
    never = (datetime.max, "")
    key = zip(customers["invoiced_at"].dt.to_pydatetime(), customers["invoice_id"], strict=True)
    keep = [k <= first.get(c, never) for k, c in zip(key, customers["customer_id"], strict=True)]
    cut = customers[keep]
    assert len(cut) < len(customers)
    raw = cut.rename(columns={"invoice_id": "Invoice", "stock_code": "StockCode",
                              "description": "Description", "quantity": "Quantity",
                              "invoiced_at": "InvoiceDate", "unit_price": "Price",
                              "customer_id": "Customer ID", "country": "Country"})
    cut_path = tmp_path / "cut.parquet"
    raw.to_parquet(cut_path)
    full = score_log(_dir(trained), slice_path).sort_values("customer_id", ignore_index=True)
    part = score_log(_dir(trained), cut_path).sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(full, part)


def test_unseen_code_gets_category_from_description(trained) -> None:
    b = trained.bundle
    known = next(iter(b.categoriser.code_category_))
    assert b.category_of(known, None) == b.categoriser.code_category_[known]
    c = b.category_of("NEW-CODE-1", "SET OF 6 RETROSPOT PAPER NAPKINS")
    assert 0 <= c < b.n_categories


def test_other_sklearn_major_is_refused(trained, tmp_path) -> None:
    import shutil

    d = tmp_path / "old"
    shutil.copytree(_dir(trained), d)
    card = json.loads((d / "model_card.json").read_text())
    card["sklearn_version"] = "0.24.2"
    (d / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="scikit-learn 0.24.2"):
        offline.load_bundle(d)


def test_bundle_of_an_older_format_is_refused(trained, tmp_path) -> None:
    import shutil

    d = tmp_path / "older"
    shutil.copytree(_dir(trained), d)
    card = json.loads((d / "model_card.json").read_text())
    del card["bundle_format"]  # bundles before the format number
    (d / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="format 1; this basketcast serves format"):
        offline.load_bundle(d)


def test_card_has_counts_metrics_and_versions(trained) -> None:
    card = json.loads((_dir(trained) / "model_card.json").read_text())
    for key in ("data", "cleaning", "versions", "categories", "segments", "classifiers",
                "forecast", "training_seconds", "model_version"):
        assert key in card
    assert card["cleaning"]["exact_duplicates"] >= 0
    assert "normalized_gini" in card["forecast"]["holdout"]
