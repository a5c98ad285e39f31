"""The Faust app module: where Faust keeps its (empty) data directory."""

from __future__ import annotations

from pathlib import Path

from stream.app import create_app
from stream.settings import Settings


def test_the_app_leaves_no_data_directory_where_it_was_started(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = create_app(Settings.from_env({"BASKETCAST_APP_ID": "litter"}), processor=None,
                     web_enabled=False)
    datadir = Path(app.conf.datadir)
    assert datadir.is_absolute() and datadir.is_dir()
    assert tmp_path not in datadir.parents
    assert list(tmp_path.iterdir()) == []
