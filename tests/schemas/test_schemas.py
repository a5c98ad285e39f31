"""The exported JSON Schemas are current, and the contracts round-trip."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import schemas.dead_letter
import schemas.drift
import schemas.export
import schemas.invoice
import schemas.scored
from schemas.export import JSON_DIR, export, json_schemas


def test_exported_json_schemas_are_current() -> None:
    expected = json_schemas()
    on_disk = {p.stem: p.read_text(encoding="utf-8") for p in JSON_DIR.glob("*.json")}
    stale = sorted(n for n in expected if on_disk.get(n) != expected[n])
    extra = sorted(set(on_disk) - set(expected))
    assert not stale and not extra, (
        f"stale {stale}, unexpected {extra}: run `basketcast schemas export schemas/json`"
    )


def test_export_writes_valid_json(tmp_path: Path) -> None:
    paths = export(tmp_path / "out")
    assert {p.name for p in paths} == {"InvoiceEvent.json", "CustomerScored.json",
                                       "DeadLetter.json", "ModelDrift.json"}
    for p in paths:
        assert json.loads(p.read_text())["type"] == "object"


@pytest.mark.parametrize(
    "module", [schemas.scored, schemas.dead_letter, schemas.export, schemas.invoice, schemas.drift]
)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.failed == 0 and result.attempted > 0


def test_event_ids_are_the_uuid5_of_their_parts() -> None:
    import random
    import uuid

    from schemas.scored import EVENT_ID_NAMESPACE, score_event_id

    rng = random.Random(0)
    for i in range(2_000):
        parts = (f"v{rng.random()}", str(rng.randrange(10**7)), f"C{i}" if i % 3 else f"é{i}")
        expected = uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts))
        assert score_event_id(*parts) == str(expected), parts
