"""The worker's web views (Faust's web server on `BASKETCAST_WEB_PORT`).

- `GET /health`: broker and Redis reachability, the bundle and online model versions, the
  consumer lag of this worker's partitions, the drift state; HTTP 503 when the worker cannot
  do its job (no bundle, Kafka or Redis unreachable).
- `GET /customers/{id}`: the customer's state, first-purchase features, score and the
  model versions behind it; 404 for an unknown id.
- `GET /metrics`: Prometheus text (see `stream.metrics`).

    $ curl -s localhost:6066/health | python -m json.tool
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.web import Request, Response, View

from stream.learner import OnlineStore
from stream.metrics import CONTENT_TYPE_LATEST, WorkerMetrics
from stream.online_serving import ServedModel
from stream.services import host_port
from stream.settings import Settings

log = logging.getLogger(__name__)

#: Seconds a reachability probe may take before the service counts as unreachable.
PROBE_TIMEOUT_S = 1.0


@dataclass
class WebContext:
    settings: Settings
    processor: Any  # stream.processor.BatchProcessor, or None (inspection only)
    online_store: OnlineStore | None
    served: ServedModel | None
    metrics: WorkerMetrics
    online_enabled: bool


async def kafka_reachable(bootstrap: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """A TCP connection to one of the bootstrap servers opens within `timeout`."""
    for address in bootstrap.split(","):
        host, port = host_port(address, 9092)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError):
            continue
        writer.close()
        return True
    return False


async def redis_reachable(redis: Any, timeout: float = PROBE_TIMEOUT_S) -> bool:
    try:
        return bool(await asyncio.wait_for(redis.ping(), timeout))
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def consumer_lag(app: faust.App) -> dict[str, Any]:
    """Invoices not yet committed, per partition assigned to this worker's scoring loop."""
    try:
        parts = app.basketcast_loop.lag()  # type: ignore[attr-defined]
        return {"total": sum(parts.values()), "partitions": {str(p): n for p, n in parts.items()}}
    except Exception as exc:  # noqa: BLE001 - not started / rebalancing
        return {"total": None, "partitions": {}, "error": f"{type(exc).__name__}: {exc}"}


async def health(app: faust.App, ctx: WebContext) -> tuple[dict[str, Any], int]:
    """The /health document and its HTTP status."""
    proc = ctx.processor
    redis = proc.store.redis if proc is not None else None
    kafka_ok, redis_ok = await asyncio.gather(
        kafka_reachable(ctx.settings.kafka_bootstrap),
        redis_reachable(redis) if redis is not None else asyncio.sleep(0, False),
    )
    scorer = getattr(proc, "scorer", None)
    checks = {"kafka": kafka_ok, "redis": redis_ok, "bundle": scorer is not None}
    online: dict[str, Any] = {"enabled": ctx.online_enabled,
                              "served_version": ctx.served.version if ctx.served else None}
    drift: dict[str, Any] = {}
    if ctx.online_store is not None and redis_ok:
        try:
            stored = await ctx.online_store.summary()
            online["stored_version"] = stored.get("version")
            online["model"] = stored.get("model")
            online["learned"] = stored.get("learned")
            online["cursor"] = stored.get("cursor")
            drift = {"detections": stored.get("drifts", 0),
                     "last": stored.get("last_drift"),
                     "monitor": stored.get("monitor")}
        except Exception as exc:  # noqa: BLE001
            online["error"] = f"{type(exc).__name__}: {exc}"
    ok = all(checks.values())
    doc = {
        "status": "ok" if ok else "unavailable",
        "checks": checks,
        "bundle": {"model_version": getattr(scorer, "model_version", None),
                   "horizon_days": getattr(scorer, "horizon_days", None)},
        "online": online,
        "consumer_lag": consumer_lag(app),
        "drift": drift,
        "leader": _is_leader(app),
    }
    return doc, 200 if ok else 503


def _is_leader(app: faust.App) -> bool | None:
    try:
        return bool(app.is_leader())
    except Exception:  # noqa: BLE001
        return None


async def customer(ctx: WebContext, customer_id: str) -> dict[str, Any] | None:
    """The /customers/{id} document; None for an unknown customer."""
    state = await ctx.processor.store.customer(customer_id)
    if state is None:
        return None
    features = json.loads(state.pop("features")) if state.get("features") else None
    score = json.loads(state.pop("score")) if state.get("score") else None
    online = (score or {}).get("online") or {}
    label = (await ctx.online_store.learned_label(customer_id)
             if ctx.online_store is not None else None)
    return {
        "customer_id": customer_id,
        "state": state,
        "features": features,
        "score": score,
        "learned_label": (None if label is None else
                          {"orders": label[0], "spend": label[1], "online_version": label[2]}),
        "model_versions": {
            "batch": (score or {}).get("model_version"),
            "online": online.get("model_version"),
            "models": (score or {}).get("models", []),
            "online_served_now": ctx.served.version if ctx.served else None,
        },
    }


def register_views(app: faust.App, ctx: WebContext) -> None:
    """Add the three views to `app`."""

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            doc, status = await health(app, ctx)
            return self.json(doc, status=status)

    @app.page("/customers/{customer_id}")
    class Customer(View):
        async def get(self, request: Request, customer_id: str) -> Response:
            if ctx.processor is None:
                return self.error(503, "no processor")
            doc = await customer(ctx, customer_id)
            if doc is None:
                return self.error(404, f"unknown customer {customer_id!r}")
            return self.json(doc)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # (the content type carries a charset: aiohttp wants it as a header, not an argument)
            return self.bytes(ctx.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
