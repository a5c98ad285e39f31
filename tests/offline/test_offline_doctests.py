"""The runnable examples in the offline modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["codes", "load", "events", "text", "categories", "features", "clean", "labels",
           "metrics", "forecast", "forecast_cv", "bundle", "tree_walk", "fast_trees",
           "fast_linear"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"offline.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
