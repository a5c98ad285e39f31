"""Drift detection on the batch model's error, as matured labels arrive.

`DriftMonitor` feeds River's ADWIN with the batch model's per-customer log error,
``log1p(realised spend) - log1p(expected spend)``: the log keeps one big spender from looking
like a regime change, and ADWIN's adaptive window compares the error's recent mean with its
older one. The learner feeds it in maturation order (first purchase + horizon, then customer
id), so a replay at any speed feeds it the same sequence and it fires at the same point.

>>> m = DriftMonitor(delta=0.002)
>>> fired = [m.update(actual=100.0, expected=100.0, event_time=float(t)) for t in range(1000)]
>>> any(fired)
False
>>> fired = [m.update(actual=900.0, expected=100.0, event_time=float(1000 + t))
...          for t in range(300)]
>>> d = next(d for d in fired if d)
>>> d.detector, d.mean_after > d.mean_before
('ADWIN', True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from river import drift

#: What the monitor watches (named in every `ModelDrift` event).
MONITORED = "log1p(realised_spend) - log1p(batch expected_spend), per matured customer"


@dataclass(frozen=True, slots=True)
class Detection:
    detector: str
    delta: float
    event_time: float  # epoch s: the maturation time of the label that triggered it
    observations: int  # labels seen by the monitor so far
    mean_before: float  # the error's mean over ADWIN's window just before the detection
    mean_after: float  # the mean over the window ADWIN kept (the new regime)


class DriftMonitor:
    """ADWIN over the batch model's log error; `update` returns a `Detection` when it fires."""

    def __init__(self, delta: float = 0.002) -> None:
        self.delta = delta
        self.adwin_ = drift.ADWIN(delta=delta)
        self.n_ = 0
        self.detections_: list[Detection] = []

    def update(self, actual: float, expected: float, event_time: float) -> Detection | None:
        before = self.adwin_.estimation
        self.adwin_.update(math.log1p(max(actual, 0.0)) - math.log1p(max(expected, 0.0)))
        self.n_ += 1
        if not self.adwin_.drift_detected:
            return None
        d = Detection("ADWIN", self.delta, event_time, self.n_, float(before),
                      float(self.adwin_.estimation))
        self.detections_.append(d)
        return d

    @property
    def mean_error(self) -> float:
        """The error's mean over the current window."""
        return float(self.adwin_.estimation)

    def state(self) -> dict[str, object]:
        """Figures for /health."""
        last = self.detections_[-1] if self.detections_ else None
        return {
            "detector": f"ADWIN(delta={self.delta})",
            "monitored": MONITORED,
            "observations": self.n_,
            "window": int(self.adwin_.width),
            "mean_error": round(self.mean_error, 4),
            "detections": len(self.detections_),
            "last_detection_event_time": last.event_time if last else None,
        }
