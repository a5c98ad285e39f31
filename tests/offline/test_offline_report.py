from __future__ import annotations

import argparse
import re

from offline import cli
from offline.report import FIGURES


def test_report_holds_every_figure(trained) -> None:
    html = (trained.artifacts["out"] / "report.html").read_text()
    for fid in FIGURES:
        assert re.search(rf"<figure id='{fid}'><img [^>]*src='data:image/png;base64,", html), fid
    assert "CC BY 4.0" in html and "Online Retail II" in html
    assert "95 % bootstrap intervals" in html and "95 % high" in html
    assert "http" not in html.split("archive.ics.uci.edu")[0].split("<a href=")[0]


def test_report_command_redraws_from_bundle(trained, tmp_path) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "r.html"
    args = parser.parse_args(["report", "--model", str(trained.artifacts["out"]), "--out",
                              str(out)])
    assert args.func(args) == 0
    text = out.read_text()
    assert all(f"id='{fid}'" in text for fid in FIGURES)
