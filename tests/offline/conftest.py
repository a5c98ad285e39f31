"""Fixtures of the offline tests: small hand-made logs and one model trained on a slice."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

# `tests/offline` would otherwise shadow the `offline` package as a namespace package when the
# repo root is not on sys.path (pytest's rootdir insertion + the editable install's finder).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see offline/__init__.py
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if getattr(sys.modules.get("offline"), "__file__", "") is None:
    del sys.modules["offline"]

UCI_II = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price",
          "Customer ID", "Country"]


def make_log(rows: list[tuple]) -> pd.DataFrame:
    """A raw log in Online Retail II naming from (invoice, code, desc, qty, date, price, cust,
    country) tuples."""
    df = pd.DataFrame(rows, columns=UCI_II)
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"])
    df["Customer ID"] = df["Customer ID"].astype("Int64")
    return df


@pytest.fixture()
def tiny_raw() -> pd.DataFrame:
    """Two customers, a guest, a cancellation, postage, a duplicate line and an adjustment."""
    return make_log([
        ("500001", "POST", "POSTAGE", 1, "2010-01-04 10:00", 18.0, 12345, "France"),
        ("500002", "22138", "BAKING SET 9 PIECE RETROSPOT", 3, "2010-01-05 10:00", 4.95, 12345,
         "France"),
        ("500002", "22138", "BAKING SET 9 PIECE RETROSPOT", 3, "2010-01-05 10:00", 4.95, 12345,
         "France"),
        ("500002", "POST", "POSTAGE", 1, "2010-01-05 10:00", 18.0, 12345, "France"),
        ("C500003", "22138", "BAKING SET 9 PIECE RETROSPOT", -3, "2010-01-06 10:00", 4.95,
         12345, "France"),
        ("500004", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2010-02-01 12:00", 2.55,
         12345, "France"),
        ("500005", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 12, "2010-01-05 09:00", 2.55,
         17850, "United Kingdom"),
        ("500006", "21232", "STRAWBERRY CERAMIC TRINKET BOX", 24, "2010-01-07 09:00", 1.25,
         None, "United Kingdom"),
        ("A500007", "B", "Adjust bad debt", 1, "2010-01-08 09:00", -100.0, None,
         "United Kingdom"),
    ])


def _customer_slice(shipped_log: Path, share_mod: int = 6) -> pd.DataFrame:
    df = pd.read_parquet(shipped_log)
    ids = df["Customer ID"].astype("string")
    keep = ids.map(lambda c: c is not pd.NA and int(hashlib.md5(c.encode()).hexdigest(), 16)
                   % share_mod == 0).fillna(False).astype(bool)
    guests = df["Customer ID"].isna() & (df["Invoice"].str[-2:] == "00")
    return df[keep | guests].reset_index(drop=True)


@pytest.fixture(scope="session")
def slice_path(shipped_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About a sixth of the shipped customers with all their rows, as Parquet."""
    path = tmp_path_factory.mktemp("data") / "slice.parquet"
    _customer_slice(shipped_log).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def trained(slice_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """A bundle trained once on the slice (with its report)."""
    from offline.train import TrainConfig, train

    out = tmp_path_factory.mktemp("models") / "bundle"
    cfg = TrainConfig(data=slice_path, out=out, progress=False, segment_k_range=(3, 5),
                      category_k_range=(3, 6))
    return train(cfg)
