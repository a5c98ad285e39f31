"""Runtime settings, read from environment variables with documented defaults.

Every variable is listed in the README's configuration table; `Settings.from_env()` is the only
place that reads them, so the worker, the CLI, the services script and the tests agree.

>>> s = Settings.from_env({"BASKETCAST_PARTITIONS": "8"})
>>> s.partitions, s.topic_invoices
(8, 'invoices')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

#: Environment variable -> (attribute, default, meaning). The README table is generated from this.
ENV_VARS: dict[str, tuple[str, str, str]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka_bootstrap", "127.0.0.1:9092", "Kafka bootstrap servers"),
    "REDIS_URL": ("redis_url", "redis://127.0.0.1:6379/0", "Redis URL for customer state"),
    "BASKETCAST_MODEL_DIR": ("model_dir", "models/latest", "model bundle the worker serves"),
    "BASKETCAST_TOPIC_INVOICES": ("topic_invoices", "invoices", "input topic of invoice events"),
    "BASKETCAST_TOPIC_SCORES": ("topic_scores", "customer-scores", "output topic of scores"),
    "BASKETCAST_TOPIC_DLQ": ("topic_dlq", "invoices-dlq", "dead-letter topic for bad events"),
    "BASKETCAST_TOPIC_DRIFT": ("topic_drift", "model-drift", "topic of drift detections"),
    "BASKETCAST_PARTITIONS": ("partitions", "4", "partitions of the topics the worker creates"),
    "BASKETCAST_WEB_PORT": ("web_port", "6066", "port of the worker's web server"),
    "BASKETCAST_APP_ID": ("app_id", "basketcast",
                          "consumer group of the invoices (Faust's own group: <id>-ops)"),
    "BASKETCAST_REDIS_PREFIX": ("redis_prefix", "", "prefix of every Redis key (isolates runs)"),
    "BASKETCAST_BATCH_MAX": ("batch_max", "5000", "most invoices in one micro-batch"),
    "BASKETCAST_NATIVE_READER": (
        "native_reader", "1",
        "1: invoices read by the native reader (stream/native) when built; 0: the Python path"
    ),
    "BASKETCAST_BATCH_WITHIN_MS": (
        "batch_within_ms", "20", "longest wait (ms) for records when none are buffered"
    ),
    "BASKETCAST_SERVICES_DIR": (
        "services_dir", ".cache", "where local Kafka/Redis keep jars, data, logs, pids"
    ),
}


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    redis_url: str
    model_dir: Path
    topic_invoices: str
    topic_scores: str
    topic_dlq: str
    topic_drift: str
    partitions: int
    web_port: int
    app_id: str
    redis_prefix: str
    batch_max: int
    native_reader: int
    batch_within_ms: int
    services_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for var, (attr, default, _) in ENV_VARS.items():
            raw = env.get(var, default)
            kind = types[attr]
            if kind in ("int", int):
                try:
                    values[attr] = int(raw)
                except ValueError:
                    raise ValueError(f"{var} must be an integer, got {raw!r}") from None
            elif kind in ("Path", Path):
                values[attr] = Path(raw)
            else:
                values[attr] = raw
        return cls(**values)  # type: ignore[arg-type]

    @property
    def worker_topics(self) -> list[str]:
        """The worker's topics: invoices, scores, dead letters, drift (in that order)."""
        return [self.topic_invoices, self.topic_scores, self.topic_dlq, self.topic_drift]


def defaults() -> dict[str, str]:
    """Environment variable -> default value."""
    return {var: default for var, (_, default, _) in ENV_VARS.items()}
