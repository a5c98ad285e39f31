"""Online learning: the place the next step (issue 5) fills in. Nothing runs here yet.

What the worker already leaves for it, in Redis (see `stream.store`):

- every scored customer in the sorted set `{prefix}maturation`, scored by first purchase +
  horizon (epoch s), registered with ZADD NX after the first purchase is stored;
- the event-time watermark: `{prefix}watermark`, member `event_time` (ZADD GT);
- in the customer's hash: `features` (JSON, as computed at the first purchase), `score` (the
  emitted `CustomerScored` JSON) and the horizon label so far, `h_orders`, `h_spend`, `h_items`
  (invoices applied after the first purchase with time <= first purchase + horizon, the
  window of `offline.labels.realised_outcome`).

The learner will be a leader-only Faust timer: pop members of `maturation` whose score is below
the watermark (ZRANGE BYSCORE + ZREM), read their features and labels, update the River
model(s) and drift detectors, persist the online model to Redis and emit `ModelDrift` on
`settings.topic_drift`. The scorer then reloads that model when its version changes.
"""

from __future__ import annotations

from typing import Any

import faust

from stream.settings import Settings


def install_learner(app: faust.App, settings: Settings, processor: Any) -> None:
    """Attach the learner's timers and web views to `app` (issue 5); a no-op for now."""
    return None
