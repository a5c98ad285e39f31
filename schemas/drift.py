"""The drift contract: a drift detector fired on the batch model's error.

Topic `model-drift` (`BASKETCAST_TOPIC_DRIFT`), key = the detector name, value = this model as
JSON. `event_id` is deterministic (detector, monitored quantity and event time), so a
re-emission after a crash can be dropped by id.

>>> d = ModelDrift(event_id=drift_event_id("ADWIN", "err", 1293667200.0), detector="ADWIN",
...     params={"delta": 0.002}, monitored="err", statistic=0.61, previous_statistic=-0.12,
...     observations=812, event_time="2010-12-30T00:00:00Z", action="reset_window",
...     batch_model_version="abc", online_model_version=41,
...     detected_at="2026-01-01T00:00:00Z")
>>> ModelDrift.model_validate_json(d.model_dump_json()) == d
True
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.scored import EVENT_ID_NAMESPACE

#: What the learner did about a detection.
Action = Literal[
    "reset_window",  # restarted the batch-vs-online comparison: post-drift labels decide
    "reset_model",  # relearn the online correction from scratch
    "none",  # alert only
]


def drift_event_id(detector: str, monitored: str, event_time: float) -> str:
    """Deterministic id of a detection."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"drift\x1f{detector}\x1f{monitored}\x1f"
                          f"{event_time!r}"))


class ModelDrift(BaseModel):
    """A detection of drift in the batch model's error, and the action taken."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    event_id: str = Field(description="uuid5 of detector, monitored and event_time")
    detector: str = Field(description="e.g. ADWIN")
    params: dict[str, float] = Field(description="the detector's parameters")
    monitored: str = Field(description="the statistic the detector watches")
    statistic: float = Field(description="its mean over the window kept after the detection")
    previous_statistic: float = Field(description="its mean just before the detection")
    observations: int = Field(ge=1, description="matured labels the detector had seen")
    event_time: datetime = Field(
        description="maturation time (first purchase + horizon) of the triggering label")
    action: Action
    batch_model_version: str
    online_model_version: int = Field(ge=0, description="online model version after the action")
    detected_at: datetime = Field(description="wall-clock time of the detection")
