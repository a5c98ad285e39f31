"""The scorer's copy of the online model: swapped in when the learner saves a new version.

`ServedModel.score` gives the `online` and `models` fields of a `CustomerScored`; the batch
fields are never touched (they equal `basketcast score` on the same invoice), and neither is
the `event_id` (it depends on the batch model version, customer and invoice only).

>>> served = ServedModel()
>>> served.score({}, {"segment": 0, "p_repeat": 0.4, "expected_orders": 0.6,
...                   "expected_spend": 120.0}, "b1")
(None, ['batch:b1'])
"""

from __future__ import annotations

import logging
from typing import Any

from schemas.scored import OnlineScore
from stream.online_model import BatchForecast, OnlineModel

log = logging.getLogger(__name__)


class ServedModel:
    """Holds the online model a scorer uses; `swap` replaces it (one reference assignment, so
    a scorer sees either the old or the new model, never a mix, whichever thread swaps it)."""

    def __init__(self) -> None:
        self._current: tuple[int, OnlineModel | None] = (0, None)

    @property
    def version(self) -> int:
        return self._current[0]

    def swap(self, version: int, model: OnlineModel | None) -> bool:
        """Serve `model` as `version` unless a newer one is served already."""
        if version <= self._current[0] and self._current[1] is not None:
            return False
        self._current = (version, model)
        log.info("event=online_model_loaded version=%d", version)
        return True

    def score(
        self, features: dict[str, Any], batch: dict[str, Any], batch_version: str
    ) -> tuple[OnlineScore | None, list[str]]:
        """(`online`, `models`) for a customer with these first-purchase features and batch
        prediction row (segment, p_repeat, expected_orders, expected_spend)."""
        version, model = self._current
        models = [f"batch:{batch_version}"]
        if model is None:
            return None, models
        b = BatchForecast(int(batch["segment"]), float(batch["p_repeat"]),
                          float(batch["expected_orders"]), float(batch["expected_spend"]))
        f = model.forecast(b, features)
        if f is None:
            return None, models
        if f.corrected:
            models.append(f"online:{version}")
        return OnlineScore(
            p_repeat=min(max(f.p_repeat, 0.0), 1.0), expected_orders=f.expected_orders,
            expected_spend=max(f.expected_spend, 0.0),
            expected_spend_mean=max(f.expected_spend_mean, 0.0), corrected=f.corrected,
            model_version=version,
        ), models
