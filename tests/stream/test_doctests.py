"""The runnable examples in the stream modules' docstrings (and the stream benchmark's) stay
true: every module with an example is found, none is listed by hand."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import stream

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {m.name: ROOT / (m.name.replace(".", "/") + ".py")
           for m in pkgutil.iter_modules(stream.__path__, "stream.")}
MODULES = sorted(name for name, src in SOURCES.items()
                 if src.exists()  # not the native stream._fastop
                 and ">>>" in src.read_text(encoding="utf-8"))


def test_the_examples_are_found() -> None:
    assert {"stream.aggregates", "stream.consumer", "stream.metrics"} <= set(MODULES)
    assert len(MODULES) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_stream_benchmark_examples() -> None:
    spec = importlib.util.spec_from_file_location("bench_stream", ROOT / "bench/bench_stream.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
