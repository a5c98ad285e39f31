"""The model bundle: fitted objects (joblib) + ``model_card.json``; what the stream serves.

>>> import tempfile; from pathlib import Path
>>> try:
...     load_bundle(Path(tempfile.mkdtemp()))
... except BundleError as e:
...     print(str(e).split(":")[0])
no model bundle in ...
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from offline.events import is_first_purchase_candidate
from offline.fast_trees import speed_up
from offline.features import features_frame, select_columns
from schemas.invoice import InvoiceEvent

log = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
SCORE_COLUMNS = (
    "customer_id", "invoice_id", "first_purchase_at", "segment", "segment_label",
    "p_repeat", "expected_orders", "expected_spend", "model_version",
)
#: What the fitted objects look like; bump it when a fitted class gains or loses attributes, so
#: an older bundle is refused with a message instead of failing at its first prediction.
#: 2: the repeat model learns from a purchase history (`RepeatClassifier`).
BUNDLE_FORMAT = 2
#: outputs are rounded so a batch and a single call agree to the last digit
ROUNDING = {"p_repeat": 6, "expected_orders": 4, "expected_spend": 2}
#: what `Bundle.predict` returns per feature row
PREDICTED_COLUMNS = ("segment", "segment_label", *ROUNDING, "model_version")


class BundleError(RuntimeError):
    """A bundle that cannot be served: missing, corrupt, or from another scikit-learn major."""


@dataclass
class Bundle:
    """Everything needed to score a first purchase.

    Attributes: ``categoriser`` (product categories), ``segment_model`` (classifier pipeline),
    ``segment_labels``, ``forecaster``, ``feature_columns``, ``horizon_days``, ``model_version``,
    ``card`` (the model card as a dict).
    """

    categoriser: Any
    segment_model: Any
    segment_labels: list[str]
    forecaster: Any
    feature_columns: list[str]
    horizon_days: int
    model_version: str = ""
    card: dict[str, Any] | None = None

    @property
    def n_categories(self) -> int:
        return int(self.categoriser.n_categories_)

    def category_of(self, stock_code: str, description: str | None,
                    unit_price: float | None = None) -> int:
        """Product category of a stock code (an unseen one: from its description)."""
        return self.categoriser.category_of(stock_code, description, unit_price)

    @property
    def known_categories(self) -> dict[str, int]:
        """Stock code -> category, for the codes seen in training (their category does not
        depend on the description)."""
        return self.categoriser.code_category_

    def features(self, invoices: Sequence[InvoiceEvent]) -> pd.DataFrame:
        """First-purchase feature rows, one per invoice, in order."""
        return select_columns(features_frame(list(invoices), self.categoriser),
                              self.feature_columns)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Score columns for feature rows: one vectorised call per model."""
        columns = self.predict_columns(features)
        if not columns["segment"]:
            return pd.DataFrame(columns=list(PREDICTED_COLUMNS))
        return pd.DataFrame(columns, columns=list(PREDICTED_COLUMNS))

    def predict_columns(self, features: pd.DataFrame) -> dict[str, list[Any]]:
        """`predict` as plain lists, one per score column (the stream reads these: building
        and reading back a data frame cost ~1 ms a batch).

        Models run single-threaded: scoring batches are small, and OpenMP threads cost more
        than they save there (and far more on a busy machine)."""
        x = select_columns(features, self.feature_columns)
        if x.empty:
            return {c: [] for c in PREDICTED_COLUMNS}
        with _single_thread():
            seg = np.asarray(self.segment_model.predict(x)).astype(int).tolist()
            fc = self.forecaster.predict_arrays(x)
        columns: dict[str, list[Any]] = {
            "segment": seg,
            "segment_label": [self.segment_labels[s] for s in seg],
        }
        for col, digits in ROUNDING.items():
            columns[col] = np.round(np.asarray(fc[col], dtype=float), digits).tolist()
        columns["model_version"] = [self.model_version] * len(seg)
        return columns

    def score_invoices(self, invoices: Sequence[InvoiceEvent]) -> list[dict[str, Any]]:
        """Score first purchases; invoices that cannot be one (C/A, no positive total) are
        skipped. Identical numbers for a batch and for each invoice alone."""
        events = [ev for ev in invoices if is_first_purchase_candidate(ev)]
        if not events:
            return []
        pred = self.predict(self.features(events))
        rows = []
        for ev, p in zip(events, pred.to_dict("records"), strict=True):
            rows.append({
                "customer_id": ev.customer_id,
                "invoice_id": ev.invoice_id,
                "first_purchase_at": ev.invoiced_at.isoformat(),
                "segment": int(p["segment"]),
                "segment_label": str(p["segment_label"]),
                "p_repeat": float(p["p_repeat"]),
                "expected_orders": float(p["expected_orders"]),
                "expected_spend": float(p["expected_spend"]),
                "model_version": self.model_version,
            })
        return rows

    def objects(self) -> dict[str, Any]:
        return {
            "categoriser": self.categoriser, "segment_model": self.segment_model,
            "segment_labels": self.segment_labels, "forecaster": self.forecaster,
            "feature_columns": self.feature_columns, "horizon_days": self.horizon_days,
        }


_CONTROLLER: list[Any] = []


def _single_thread() -> Any:
    """A context limiting OpenMP/BLAS threads to 1 (controller built once per process)."""
    from threadpoolctl import ThreadpoolController

    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1)


def _sklearn_major(version: str) -> str:
    return version.split(".")[0]


def save_bundle(bundle: Bundle, directory: str | Path, card: dict[str, Any]) -> Bundle:
    """Write ``model.joblib`` and ``model_card.json``; set the content-derived model version."""
    import sklearn

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    joblib.dump(bundle.objects(), path, compress=3)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    bundle.model_version = digest
    card = {**card, "model_version": digest, "sklearn_version": sklearn.__version__,
            "bundle_format": BUNDLE_FORMAT,
            "horizon_days": bundle.horizon_days, "model_file_sha256": digest}
    bundle.card = card
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2, default=_json_default))
    log.info("event=bundle_saved dir=%s model_version=%s", directory, digest)
    return bundle


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp,)):
        return o.isoformat()
    return str(o)


def load_bundle(directory: str | Path) -> Bundle:
    """Load a bundle; refuse one written by another scikit-learn major version."""
    import sklearn

    directory = Path(directory)
    card_path, model_path = directory / CARD_FILE, directory / MODEL_FILE
    if not card_path.exists() or not model_path.exists():
        raise BundleError(f"no model bundle in {directory}: expected {MODEL_FILE} and {CARD_FILE}")
    card = json.loads(card_path.read_text())
    trained = str(card.get("sklearn_version", "?"))
    if _sklearn_major(trained) != _sklearn_major(sklearn.__version__):
        raise BundleError(
            f"bundle {directory} was trained with scikit-learn {trained}; this environment has "
            f"{sklearn.__version__} (another major version): retrain with `basketcast train`")
    if card.get("bundle_format") != BUNDLE_FORMAT:
        raise BundleError(
            f"bundle {directory} has format {card.get('bundle_format', 1)}; this basketcast "
            f"serves format {BUNDLE_FORMAT}: retrain with `basketcast train`")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
    if card.get("model_version") and card["model_version"] != digest:
        raise BundleError(f"bundle {directory}: {MODEL_FILE} does not match its model card")
    try:
        objs = joblib.load(model_path)
    except Exception as exc:  # pragma: no cover - corrupt file
        raise BundleError(f"bundle {directory}: cannot load {MODEL_FILE}: {exc}") from exc
    # Same numbers, a fraction of the fixed cost per call: the stream scores small batches.
    log.debug("event=bundle_sped_up models=%d", speed_up(objs))
    return Bundle(**objs, model_version=digest, card=card)
