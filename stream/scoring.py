"""The worker's view of the model bundle: one call per micro-batch, scores as `CustomerScored`.

`Scorer` wraps an `offline.load_bundle(dir)` bundle (`features`, `predict`, `category_of`,
`model_version`, `horizon_days`). It takes the steps of the bundle's `score_invoices` (the
features of the first purchases, one `predict`), keeping the features to store with the score;
the end-to-end tests prove a streamed score equals `basketcast score` on the same invoice.
First purchases come as `stream.validate.Invoice`s: the contract's `InvoiceEvent`, or the fast
decoder's view of one with the same attribute values (tests/stream/test_fast_invoice.py); the
bundle's feature function reads only those attributes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec
import numpy as np
import pandas as pd

from schemas.invoice import InvoiceEvent
from schemas.scored import CustomerScored, score_event_id
from stream.aggregates import event_time
from stream.validate import Invoice

log = logging.getLogger(__name__)


class Bundle(Protocol):
    model_version: str
    horizon_days: int

    def score_invoices(self, invoices: list[InvoiceEvent]) -> list[dict[str, Any]]: ...

    def predict_columns(self, features: pd.DataFrame) -> dict[str, list[Any]]: ...

    def features(self, invoices: list[Invoice]) -> pd.DataFrame: ...

    def category_of(self, stock_code: str, description: str | None) -> int: ...


@dataclass(frozen=True, slots=True)
class Scored:
    """A first purchase's score, its JSON as emitted and stored, and the features behind it."""

    score: CustomerScored
    score_json: str
    features_json: str
    due: float  # first purchase + horizon, epoch seconds


class Scorer:
    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.model_version = str(bundle.model_version)
        self.horizon_days = int(bundle.horizon_days)
        self.category_of = bundle.category_of  # cached per line by the processor
        #: stock code -> category for the codes the bundle knows (optional: a bundle without it
        #: has every line looked up through `category_of`)
        self.known_categories: Mapping[str, int] = getattr(bundle, "known_categories", {})
        # The online model (issue 5), set by `stream.online.install`: adds the optional
        # `online` / `models` fields; the batch fields and the event id never depend on it.
        self.online: Any = None

    def score(
        self, first_purchases: Sequence[Invoice], now: datetime | None = None
    ) -> tuple[dict[str, Scored], dict[str, str]]:
        """Score first purchases (one per customer): (customer -> Scored, customer -> error).

        One model call for the batch; if it fails, each invoice alone, so one bad invoice
        cannot block the others. It runs on the caller's thread (the worker's event loop): a
        model call takes ~2-50 ms per batch, and a scoring thread cost more than it saved, the
        interpreter lock changing hands with the loop about every millisecond (10,972 ->
        11,634 invoices/s and p50 at 500/s 20 -> 15 ms without it, `bench/bench_stream.py`).
        """
        if not first_purchases:
            return {}, {}
        now = now or datetime.now(UTC)
        try:
            return self._score(list(first_purchases), now), {}
        except Exception:  # noqa: BLE001 - isolate the invoice that breaks the model
            log.exception("event=batch_score_failed size=%d; scoring one by one",
                          len(first_purchases))
        scored: dict[str, Scored] = {}
        failed: dict[str, str] = {}
        for ev in first_purchases:
            try:
                scored.update(self._score([ev], now))
            except Exception as exc:  # noqa: BLE001
                failed[str(ev.customer_id)] = f"{type(exc).__name__}: {exc}"
        return scored, failed

    def _score(self, events: list[Invoice], now: datetime) -> dict[str, Scored]:
        """Features once, one vectorised predict: the same steps as `score_invoices` (for
        candidates), without computing the features a second time for storage."""
        frame = self.bundle.features(events)
        predicted = self.bundle.predict_columns(frame)
        # rows as dicts from column lists (DataFrame.to_dict("records") cost ~4 us a row)
        names = list(predicted)
        pred = [dict(zip(names, values, strict=True))
                for values in zip(*predicted.values(), strict=True)]
        feature_rows = _feature_rows(frame)
        out: dict[str, Scored] = {}
        for ev, row, features in zip(events, pred, feature_rows, strict=True):
            cid = str(ev.customer_id)
            score = CustomerScored(
                event_id=score_event_id(self.model_version, cid, ev.invoice_id),
                customer_id=cid,
                invoice_id=ev.invoice_id,
                first_purchase_at=ev.invoiced_at,
                segment=int(row["segment"]),
                segment_label=str(row["segment_label"]),
                p_repeat=float(row["p_repeat"]),
                expected_orders=float(row["expected_orders"]),
                expected_spend=float(row["expected_spend"]),
                horizon_days=self.horizon_days,
                model_version=str(row.get("model_version", self.model_version)),
                scored_at=now,
                **self._online_fields(features, row),
            )
            due = event_time(ev.invoiced_at + timedelta(days=self.horizon_days))
            out[cid] = Scored(score, score.model_dump_json(), _encode(features).decode(), due)
        return out

    def _online_fields(self, features: dict, row: dict) -> dict[str, Any]:
        if self.online is None:
            return {}
        try:
            online, models = self.online.score(features, row, self.model_version)
        except Exception:  # noqa: BLE001 - the online model never blocks the batch score
            log.exception("event=online_score_failed")
            return {"models": [f"batch:{self.model_version}"]}
        return {"online": online, "models": models}


def serve_single_threaded(bundle: object) -> None:
    """Configure a loaded bundle for serving small batches: every `n_jobs` = 1, one OpenMP/BLAS
    thread. Starting threads per call (and fighting Kafka and Redis for the cores) costs far
    more than it saves on a micro-batch: a 200-tree forest goes from ~33 ms to ~11 ms a call.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    for name in ("segment_model", "forecaster", "categoriser"):
        model = getattr(bundle, name, None)
        if model is None or not hasattr(model, "get_params"):
            continue
        try:
            params = {k: 1 for k in model.get_params(deep=True) if k.endswith("n_jobs")}
            if params:
                model.set_params(**params)
        except Exception:  # noqa: BLE001 - a custom estimator without full get_params support
            log.warning("event=serial_config_skipped model=%s", name, exc_info=True)


#: the stored features' JSON (msgspec: ~2 us a first purchase where `json.dumps` took ~11)
_encode = msgspec.json.Encoder().encode


def _feature_rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The bundle's feature frame (one row per invoice, in order) as JSON-safe dicts.

    >>> _feature_rows(pd.DataFrame({"a": [1.5, float("nan")], "b": [2, 3]}))
    [{'a': 1.5, 'b': 2.0}, {'a': None, 'b': 3.0}]
    """
    names = [str(c) for c in frame.columns]
    try:  # the usual case, numbers only: no per-value conversions
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        return [{k: _jsonable(v) for k, v in zip(names, rec, strict=True)}
                for rec in frame.itertuples(index=False, name=None)]
    finite = np.isfinite(values).all(axis=1).tolist()
    return [dict(zip(names, row if ok else [_jsonable(v) for v in row], strict=True))
            for row, ok in zip(values.tolist(), finite, strict=True)]


def _jsonable(v: object) -> object:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (pd.Timestamp, datetime)):
        return v.isoformat()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)
