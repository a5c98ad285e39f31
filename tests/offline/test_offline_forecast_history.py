"""The repeat classifier's purchase history: labels over the follow-up seen, never a held-out
customer's rows, never a CV test-fold customer's, and P non-decreasing in the share followed."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from offline.dataset import HISTORY_META, build_customer_table, fit_history
from offline.forecast import HISTORY_INPUTS, NextYearForecaster, RepeatClassifier
from offline.forecast_cv import cross_validate, training_history
from offline.labels import MIN_OBSERVED_DAYS, invoice_table, purchase_history
from schemas.invoice import InvoiceEvent, InvoiceLine

START = datetime(2010, 1, 1, 9)
END = datetime(2011, 12, 31, 9)


class OneCategory:
    n_categories_ = 1

    def category_of(self, code: str, description: str | None, unit_price: float | None = None
                    ) -> int:
        return 0

    def reference_price(self, code: str) -> float | None:
        return 2.0


def _events(n_customers: int = 300, seed: int = 0) -> list[InvoiceEvent]:
    """Customers first seen uniformly over the log, each with 0-5 later orders."""
    rng = np.random.default_rng(seed)
    span = (END - START).days
    out = []
    for c in range(n_customers):
        t = START + timedelta(days=float(rng.uniform(0, span - 1)))
        for k in range(1 + int(rng.integers(0, 6))):
            if t >= END:
                break
            out.append(InvoiceEvent(
                invoice_id=f"{c:04d}{k}", customer_id=str(10000 + c), country="France",
                invoiced_at=t, lines=(InvoiceLine(stock_code="22138", quantity=int(
                    rng.integers(1, 30)), unit_price=float(rng.uniform(1, 9))),)))
            t += timedelta(days=float(rng.exponential(120)))
    out.append(InvoiceEvent(invoice_id="99999", customer_id="1", country="France",
                            invoiced_at=END, lines=(InvoiceLine(stock_code="22138", quantity=1,
                                                                unit_price=1.0),)))
    return sorted(out, key=lambda e: (e.invoiced_at, e.invoice_id))


@pytest.fixture(scope="module")
def table():
    return build_customer_table(_events(), OneCategory(), horizon_days=365, seed=0)


def test_history_rows_are_not_cohort_or_warmup_first_purchases(table) -> None:
    h = table.history
    assert list(h.columns[:len(HISTORY_META)]) == list(HISTORY_META)
    assert len(h) > 100
    firsts = h[h["prior_orders"] == 0]
    ids = table.ids.set_index("invoice_id")
    assert not ids.loc[firsts["invoice_id"], "in_cohort"].any()
    assert (ids.loc[firsts["invoice_id"], "first_purchase_at"]
            >= pd.Timestamp(START) + pd.Timedelta(days=90)).all()
    assert (firsts["observed_share"] < 1).all()  # censored: less than a horizon seen
    assert (h["observed_share"] * 365 >= MIN_OBSERVED_DAYS).all()
    assert (h["prior_orders"] > 0).any()


def test_fit_history_never_holds_a_heldout_customer(table) -> None:
    h = fit_history(table)
    held = set(table.ids.loc[table.ids["holdout"], "customer_id"])
    assert held and not held & set(h["customer_id"])
    assert len(h) == int((~table.history["holdout"]).sum())
    some = list(h["customer_id"].unique()[:5])
    assert not set(some) & set(fit_history(table, exclude=some)["customer_id"])


def test_history_first_purchase_labels_match_cohort_labels() -> None:
    """On a cohort first purchase the history's label is the cohort's repeat label."""
    events = _events(seed=1)
    t = build_customer_table(events, OneCategory(), horizon_days=365)
    h = purchase_history(invoice_table(events), 365, END)
    first = h[h["prior_orders"] == 0].set_index("customer_id")
    coh = t.ids["in_cohort"].to_numpy()
    cids = t.ids["customer_id"][coh]
    assert (first.loc[cids, "repeat"].to_numpy() == t.labels["repeat"][coh].to_numpy()).all()
    assert (first.loc[cids, "observed_share"] == 1.0).all()


def test_repeat_within_observed_window_only() -> None:
    inv = pd.DataFrame({
        "customer_id": ["a", "a", "b", "b"], "invoice_id": ["1", "2", "3", "4"],
        "invoiced_at": pd.to_datetime(["2011-01-01", "2011-11-01", "2011-06-01",
                                       "2011-06-20"]),
        "purchase": True, "counts": True, "value": 1.0})
    h = purchase_history(inv, 365, datetime(2011, 12, 1)).set_index("invoice_id")
    assert h.loc["1", "repeat"] == 1 and h.loc["3", "repeat"] == 1
    assert "2" in h.index and h.loc["2", "repeat"] == 0  # 30 days seen, no repeat yet
    assert round(float(h.loc["2", "observed_share"]), 4) == round(30 / 365, 4)


def _xy(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"basket_value": rng.lognormal(5, 1, n), "n_lines": rng.integers(1, 30, n)})
    share = rng.uniform(0.05, 1, n)
    p = 1 / (1 + np.exp(-(np.log(x["basket_value"]) - 5 + 2 * (share - 0.5))))
    h = x.assign(observed_share=share, prior_orders=rng.integers(0, 4, n).astype(float),
                 repeat=(rng.uniform(size=n) < p).astype(int))
    return x, (rng.uniform(size=n) < p).to_numpy(), h


def test_probability_non_decreasing_in_observed_share() -> None:
    x, y, h = _xy()
    c = RepeatClassifier(max_iter=50, min_samples_leaf=20).fit(x, y, h)
    shares = np.linspace(0.05, 1, 12)
    p = np.array([c.predict_proba(x.head(40), observed_share=s) for s in shares])
    assert (np.diff(p, axis=0) >= -1e-12).all()
    assert np.allclose(c.predict_proba(x.head(5)),
                       c.predict_proba(x.head(5), **HISTORY_INPUTS))


def test_history_switch_and_batch_equals_single() -> None:
    x, y, h = _xy(seed=2)
    orders = y.astype(int)
    with_h = NextYearForecaster(max_iter=20, repeat_max_iter=30).fit(x, orders, orders * 10.0, h)
    without = NextYearForecaster(max_iter=20, repeat_max_iter=30, repeat_history=False).fit(
        x, orders, orders * 10.0, h)
    assert with_h.repeat_.n_history_ == len(h) and without.repeat_.n_history_ == 0
    batch = with_h.predict(x.head(10))
    single = pd.concat([with_h.predict(x.iloc[[i]]) for i in range(10)])
    pd.testing.assert_frame_equal(batch, single)


def test_cv_training_history_drops_test_fold_customers() -> None:
    x, y, h = _xy(n=300, seed=3)
    customers = pd.Series([f"c{i}" for i in range(len(x))])
    hist = h.assign(customer_id=customers.sample(frac=1, replace=True, random_state=0).values)
    test = np.arange(0, 300, 5)
    kept = training_history(hist, customers, test)
    assert kept is not None and not set(kept["customer_id"]) & set(customers.iloc[test])
    assert len(kept) < len(hist)
    with pytest.raises(ValueError):
        training_history(hist, None, test)
    labels = pd.DataFrame({"orders": y.astype(int), "spend": y * 10.0, "repeat": y.astype(int)})
    folds = cross_validate(x, labels, {"a": {"repeat_history": False}, "b": {}}, repeats=1,
                           history=hist, customers=customers)
    assert folds["repeat_auc"].between(0, 1).all()


def test_history_changes_p_repeat_only() -> None:
    """By default the spend forecast is the cohort-only one; only p_repeat uses the history."""
    x, y, h = _xy(seed=4)
    orders = y.astype(int) * 2
    spend = orders * x["basket_value"].to_numpy()
    kw = {"max_iter": 20, "repeat_max_iter": 30}
    served = NextYearForecaster(**kw).fit(x, orders, spend, h).predict(x)
    before = NextYearForecaster(repeat_history=False, repeat_max_depth=1, **kw).fit(
        x, orders, spend, h).predict(x)
    coupled = NextYearForecaster(hurdle_uses_history=True, **kw).fit(
        x, orders, spend, h).predict(x)
    assert np.allclose(served["expected_spend"], before["expected_spend"])
    assert np.allclose(served["p_repeat"], coupled["p_repeat"])
    assert not np.allclose(served["p_repeat"], before["p_repeat"])
