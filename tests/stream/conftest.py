"""Fixtures of the online-learning tests: a bundle with a 90-day horizon and the whole log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.invoice import InvoiceEvent
from stream.replay import load_events

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("BASKETCAST_DATA", ROOT.parent / "shared/data/online_retail_ii.parquet"))
HORIZON = 90


@pytest.fixture(scope="session")
def bundle90(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 90-day-horizon bundle: $BASKETCAST_TEST_BUNDLE_90, or trained once per session (~3 min)."""
    given = os.environ.get("BASKETCAST_TEST_BUNDLE_90")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("bundle90") / "model"
    subprocess.run(
        [sys.executable, "-m", "stream.cli", "train", "--data", str(DATA), "--out", str(out),
         "--horizon-days", str(HORIZON), "--no-progress"],
        check=True, cwd=ROOT, timeout=1800,
    )
    return out


@pytest.fixture(scope="session")
def log_events() -> list[InvoiceEvent]:
    """The whole shipped log, as invoice events in time order."""
    return load_events(DATA)
