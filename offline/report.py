"""The HTML report (placeholder until the figures land)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(result: Any, out: Path) -> Path:
    card = result.card
    out.write_text("<html><body><h1>basketcast model report</h1><pre>"
                   + json.dumps(card, indent=1, default=str) + "</pre></body></html>")
    return out


def report_from_bundle(model_dir: Path, out: Path) -> Path:
    from offline.bundle import load_bundle

    b = load_bundle(model_dir)
    return write_report(type("R", (), {"card": b.card})(), out)
