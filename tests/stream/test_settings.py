from __future__ import annotations

from pathlib import Path

import pytest

from stream.settings import ENV_VARS, Settings, defaults


def test_defaults_when_environment_is_empty():
    s = Settings.from_env({})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.topic_scores == "customer-scores"
    assert s.web_port == 6066
    assert s.model_dir == Path("models/latest")


def test_environment_overrides_and_types():
    s = Settings.from_env({"BASKETCAST_WEB_PORT": "7000", "REDIS_URL": "redis://r:1/2"})
    assert s.web_port == 7000 and s.redis_url == "redis://r:1/2"


def test_a_bad_integer_names_the_variable():
    with pytest.raises(ValueError, match="BASKETCAST_PARTITIONS"):
        Settings.from_env({"BASKETCAST_PARTITIONS": "four"})


def test_every_variable_is_documented_in_the_readme():
    from stream.learner import ENV_VARS as LEARNER_VARS

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [var for var in [*ENV_VARS, *LEARNER_VARS] if f"`{var}`" not in readme]
    assert not missing, f"README configuration table lacks {missing}"
    for var, default in defaults().items():
        assert f"`{default}`" in readme or default == "", f"README lacks the default of {var}"
