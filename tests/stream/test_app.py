"""The Faust app module: its examples, and where Faust keeps its (empty) data directory."""

from __future__ import annotations

import doctest
from pathlib import Path

import stream.app
from stream.app import create_app
from stream.settings import Settings


def test_docstring_examples() -> None:
    result = doctest.testmod(stream.app)
    assert result.attempted > 0 and result.failed == 0


def test_the_app_leaves_no_data_directory_where_it_was_started(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = create_app(Settings.from_env({"BASKETCAST_APP_ID": "litter"}), processor=None,
                     web_enabled=False)
    datadir = Path(app.conf.datadir)
    assert datadir.is_absolute() and datadir.is_dir()
    assert tmp_path not in datadir.parents
    assert list(tmp_path.iterdir()) == []
