"""Fixtures of the online-learning tests: a bundle with a 90-day horizon and the whole log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HORIZON = 90


@pytest.fixture(scope="session")
def bundle90(shipped_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 90-day-horizon bundle: $BASKETCAST_TEST_BUNDLE_90, or trained once per session (~3 min)."""
    given = os.environ.get("BASKETCAST_TEST_BUNDLE_90")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("bundle90") / "model"
    subprocess.run(
        [sys.executable, "-m", "stream.cli", "train", "--data", str(shipped_log), "--out", str(out),
         "--horizon-days", str(HORIZON), "--no-progress"],
        check=True, cwd=ROOT, timeout=1800,
    )
    return out
