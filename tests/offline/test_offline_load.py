from __future__ import annotations

import pandas as pd
import pytest

from offline.load import LogFormatError, normalise, read_log


def test_both_namings_give_the_same_frame(tiny_raw: pd.DataFrame, tmp_path) -> None:
    old = tiny_raw.rename(columns={"Invoice": "InvoiceNo", "Price": "UnitPrice",
                                   "Customer ID": "CustomerID"})
    old["CustomerID"] = old["CustomerID"].astype("float64")  # 17850.0 as in the older file
    p_new, p_old = tmp_path / "new.parquet", tmp_path / "old.csv"
    tiny_raw.to_parquet(p_new)
    old.to_csv(p_old, index=False)
    a, b = read_log(p_new), read_log(p_old)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["customer_id"].dropna()) == {"12345", "17850"}


def test_excel(tiny_raw: pd.DataFrame, tmp_path) -> None:
    path = tmp_path / "log.xlsx"
    tiny_raw.to_excel(path, index=False)
    df = read_log(path)
    assert len(df) == len(tiny_raw)
    assert df["customer_id"].iloc[0] == "12345"
    assert df["quantity"].dtype == "int64"


def test_missing_columns_are_named(tiny_raw: pd.DataFrame, tmp_path) -> None:
    path = tmp_path / "bad.csv"
    tiny_raw.drop(columns=["Price", "Country"]).to_csv(path, index=False)
    with pytest.raises(LogFormatError, match=r"missing columns: Price/UnitPrice, Country"):
        read_log(path)


def test_unparseable_dates_count_and_example(tiny_raw: pd.DataFrame) -> None:
    raw = tiny_raw.astype({"InvoiceDate": "string"})
    raw.loc[[1, 3], "InvoiceDate"] = "yesterday"
    with pytest.raises(LogFormatError, match=r"2 rows with unparseable InvoiceDate.*'yesterday'"):
        normalise(raw)


def test_unparseable_numbers(tiny_raw: pd.DataFrame) -> None:
    raw = tiny_raw.astype({"Quantity": "string"})
    raw.loc[2, "Quantity"] = "three"
    with pytest.raises(LogFormatError, match=r"1 rows with unparseable Quantity.*row 3"):
        normalise(raw)


def test_unsupported_suffix(tmp_path) -> None:
    path = tmp_path / "log.json"
    path.write_text("{}")
    with pytest.raises(LogFormatError, match="unsupported file type"):
        read_log(path)
