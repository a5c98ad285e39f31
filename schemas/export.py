"""Export the contracts' JSON Schemas, so consumers can validate without importing Python.

The exported files live in `schemas/json/` and a test fails when they are stale; refresh them
with `basketcast schemas export schemas/json`.

>>> sorted(json_schemas())
['CustomerScored', 'DeadLetter', 'InvoiceEvent', 'ModelDrift']
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.dead_letter import DeadLetter
from schemas.drift import ModelDrift
from schemas.invoice import InvoiceEvent
from schemas.scored import CustomerScored

MODELS: tuple[type[BaseModel], ...] = (InvoiceEvent, CustomerScored, DeadLetter, ModelDrift)
#: Where the repo keeps the exported files.
JSON_DIR = Path(__file__).parent / "json"


def json_schemas() -> dict[str, str]:
    """Model name -> its JSON Schema as stable, pretty-printed text."""
    return {
        m.__name__: json.dumps(m.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for m in MODELS
    }


def export(directory: str | Path) -> list[Path]:
    """Write `<Model>.json` for every contract into `directory`; returns the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in json_schemas().items():
        path = out / f"{name}.json"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
