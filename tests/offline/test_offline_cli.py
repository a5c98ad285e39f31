from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from offline import cli


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="basketcast")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_score_writes_every_format(trained, slice_path, tmp_path, suffix, capsys) -> None:
    out = tmp_path / f"scores{suffix}"
    assert run(["score", "--model", str(trained.artifacts["out"]), "--data", str(slice_path),
                "--out", str(out)]) == 0
    if suffix == ".parquet":
        df = pd.read_parquet(out)
    elif suffix == ".csv":
        df = pd.read_csv(out, dtype={"customer_id": str})
    else:
        df = pd.DataFrame([json.loads(x) for x in out.read_text().splitlines()])
        df["customer_id"] = df["customer_id"].astype(str)
    assert len(df) == len(set(df["customer_id"])) > 100
    assert not df["customer_id"].str.endswith(".0").any()
    assert (df["model_version"] == trained.bundle.model_version).all()


def test_bad_file_exit_code_2(tmp_path, trained, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    code = run(["score", "--model", str(trained.artifacts["out"]), "--data", str(bad),
                "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert code == 2
    assert "missing columns" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_bundle_exit_code_2(tmp_path, slice_path, capsys) -> None:
    code = run(["score", "--model", str(tmp_path), "--data", str(slice_path),
                "--out", str(tmp_path / "x.csv")])
    assert code == 2
    assert "no model bundle" in capsys.readouterr().err


def test_train_refuses_a_log_too_short_for_the_horizon(tiny_raw, tmp_path, capsys) -> None:
    path = tmp_path / "tiny.csv"
    tiny_raw.to_csv(path, index=False)
    code = run(["train", "--data", str(path), "--out", str(tmp_path / "m"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cohort too small" in err and "--horizon-days" in err
