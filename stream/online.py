"""Wire online learning and operations into the worker's Faust app.

`install(app, settings, processor)` (called by `stream.app.create_app` through
`stream.learner.install_learner`) adds:

- the learner: a leader-only timer (`app.timer(..., on_leader=True)`): one learner per
  consumer group, whichever worker leads; its state lives in Redis, so a new leader or a
  restarted worker resumes from it;
- the model reload: a timer on every worker that swaps in the online model when its version
  in Redis changes (the leader's own scorer gets it at once);
- the `ModelDrift` topic (`BASKETCAST_TOPIC_DRIFT`), the metrics hook, the web views.

Online learning can be switched off with `BASKETCAST_ONLINE_LEARNING=0` (then the scores carry
no `online` field, and /health says so).
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from schemas.drift import ModelDrift
from stream.learner import Learner, LearnerConfig, OnlineStore
from stream.metrics import WorkerMetrics
from stream.online_serving import ServedModel
from stream.retry import UNAVAILABLE
from stream.settings import Settings
from stream.web import WebContext, register_views

log = logging.getLogger(__name__)


def install(app: faust.App, settings: Settings, processor: Any) -> None:
    config = LearnerConfig.from_env()
    metrics = WorkerMetrics()
    app.basketcast_metrics = metrics  # type: ignore[attr-defined]
    hooks = getattr(app, "basketcast_batch_hooks", None)
    if hooks is not None:
        hooks.append(metrics.observe_batch)
    loop = getattr(app, "basketcast_loop", None)
    if loop is not None:
        metrics.watch_loop(loop.seconds)
    drift_topic = app.topic(settings.topic_drift, key_serializer="raw",
                            value_serializer="raw", partitions=settings.partitions)
    app.basketcast_drift_topic = drift_topic  # type: ignore[attr-defined]

    store = getattr(processor, "store", None)
    scorer = getattr(processor, "scorer", None)
    online_store = OnlineStore(store.redis, settings.redis_prefix) if store is not None else None
    served = ServedModel() if config.enabled and scorer is not None else None
    register_views(app, WebContext(settings, processor, online_store, served, metrics,
                                   config.enabled))
    if served is None or online_store is None or scorer is None:
        return
    scorer.online = served

    def on_model(version: int, model: Any) -> None:
        if served.swap(version, model):
            metrics.online_version.set(version)

    async def emit(event: ModelDrift) -> None:
        await drift_topic.send(key=event.detector.encode(), value=event.model_dump_json().encode())

    learner = Learner(store, online_store, config, scorer.model_version, emit=emit,
                      on_model=on_model, on_learned=metrics.observe_learner)
    app.basketcast_learner = learner  # type: ignore[attr-defined]

    @app.timer(interval=config.interval_s, on_leader=True, name="online-learner")
    async def learn() -> None:
        try:
            await learner.step()
        except Exception as exc:  # noqa: BLE001 - a failed step is retried at the next tick
            if isinstance(exc, UNAVAILABLE):  # an outage: one line, no traceback
                log.warning("event=learner_step_failed error=%r retry=next_tick", exc)
            else:
                log.exception("event=learner_step_failed")
            learner.state = None  # reload from Redis next time

    async def reload_model() -> None:
        try:
            if await online_store.version() == served.version:
                return
            version, model = await online_store.load_model()
            if model is not None:
                on_model(version, model)
        except UNAVAILABLE as exc:  # keep serving the model we have
            log.warning("event=online_model_reload_failed error=%r", exc)
        except Exception:  # noqa: BLE001 - keep serving the model we have
            log.warning("event=online_model_reload_failed", exc_info=True)

    # app.timer returns its endless timer loop: keep the plain function for the start-up load
    app.timer(interval=config.reload_s, name="online-model-reload")(reload_model)
    if loop is not None:  # a restarted worker scores with the stored online model from the start
        loop.before_start.append(reload_model)
    log.info("event=online_learning_installed interval_s=%.2f lateness_s=%.0f warmup_days=%.0f "
             "drift_delta=%g drift_action=%s", config.interval_s, config.lateness_s,
             config.warmup_days, config.drift_delta, config.drift_action)
