"""docker-compose.yml agrees with the settings' defaults (no Docker engine needed to check)."""

from __future__ import annotations

from pathlib import Path

import yaml

from stream.services import host_port
from stream.settings import ENV_VARS, defaults

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())


def _published_ports(service: str) -> set[int]:
    return {int(str(p).split(":")[0]) for p in COMPOSE["services"][service].get("ports", [])}


def test_compose_has_the_three_services():
    assert set(COMPOSE["services"]) >= {"kafka", "redis", "worker"}


def test_kafka_is_kraft_on_the_default_port():
    env = COMPOSE["services"]["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    _, port = host_port(defaults()["KAFKA_BOOTSTRAP_SERVERS"], 9092)
    assert port in _published_ports("kafka")
    assert f"127.0.0.1:{port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert COMPOSE["services"]["kafka"]["image"].startswith("apache/kafka:4.")


def test_redis_on_the_default_port():
    _, port = host_port(defaults()["REDIS_URL"], 6379)
    assert port in _published_ports("redis")


def test_worker_env_names_are_the_settings_names_and_defaults_agree():
    env = COMPOSE["services"]["worker"]["environment"]
    unknown = set(env) - set(ENV_VARS)
    assert not unknown, f"compose sets variables the settings do not read: {unknown}"
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"):
        assert name in env
    topic_vars = [v for v in ENV_VARS if v.startswith("BASKETCAST_TOPIC_")]
    for name in [*topic_vars, "BASKETCAST_PARTITIONS", "BASKETCAST_WEB_PORT"]:
        assert str(env[name]) == defaults()[name], name
    assert int(defaults()["BASKETCAST_WEB_PORT"]) in _published_ports("worker")
