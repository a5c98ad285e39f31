"""Read a line-level transaction log (CSV, Excel or Parquet, either UCI naming) into one shape.

The normalised frame has the columns of :data:`COLUMNS`: ``invoice_id`` (str), ``stock_code``
(str), ``description`` (str or NA), ``quantity`` (int64), ``invoiced_at`` (datetime64, naive),
``unit_price`` (float64), ``customer_id`` (str or NA, "17850" never "17850.0"), ``country``.

>>> import io, pandas as pd
>>> csv = io.StringIO(
...     "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\\n"
...     "536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\\n")
>>> df = normalise(pd.read_csv(csv, dtype=str))
>>> df.loc[0, "customer_id"], int(df.loc[0, "quantity"])
('17850', 6)
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = (
    "invoice_id",
    "stock_code",
    "description",
    "quantity",
    "invoiced_at",
    "unit_price",
    "customer_id",
    "country",
)

#: canonical column -> accepted source names (compared lower-case, without spaces/underscores)
ALIASES: dict[str, tuple[str, ...]] = {
    "invoice_id": ("invoice", "invoiceno"),
    "stock_code": ("stockcode",),
    "description": ("description",),
    "quantity": ("quantity",),
    "invoiced_at": ("invoicedate",),
    "unit_price": ("price", "unitprice"),
    "customer_id": ("customerid",),
    "country": ("country",),
}
#: how a missing column is named in error messages
DISPLAY = {
    "invoice_id": "Invoice/InvoiceNo",
    "stock_code": "StockCode",
    "description": "Description",
    "quantity": "Quantity",
    "invoiced_at": "InvoiceDate",
    "unit_price": "Price/UnitPrice",
    "customer_id": "Customer ID/CustomerID",
    "country": "Country",
}
_MISSING_TEXT = {"", "nan", "none", "null", "<na>"}


class LogFormatError(ValueError):
    """The file is not a transaction log basketcast can read; the message says why."""


def read_log(path: str | Path) -> pd.DataFrame:
    """Read and normalise a log; raise :class:`LogFormatError` with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise LogFormatError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            raw = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".gz"):
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="replace")
        elif suffix in (".xlsx", ".xls", ".xlsm"):
            sheets = pd.read_excel(path, sheet_name=None, dtype=object)
            raw = pd.concat(list(sheets.values()), ignore_index=True)
        else:
            raise LogFormatError(f"{path}: unsupported file type {suffix!r} (csv, xlsx or parquet)")
    except LogFormatError:
        raise
    except Exception as exc:  # pragma: no cover - depends on the parser's message
        raise LogFormatError(f"{path}: cannot read as {suffix[1:]}: {exc}") from exc
    df = normalise(raw, source=str(path))
    log.info("event=read_log path=%s rows=%d", path, len(df))
    return df


def _key(name: object) -> str:
    return str(name).lower().replace(" ", "").replace("_", "")


def _rename(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    by_key = {_key(c): c for c in raw.columns}
    mapping: dict[str, str] = {}
    missing: list[str] = []
    for col, aliases in ALIASES.items():
        found = next((by_key[a] for a in aliases if a in by_key), None)
        if found is None:
            missing.append(DISPLAY[col])
        else:
            mapping[found] = col
    if missing:
        raise LogFormatError(
            f"{source}: missing columns: {', '.join(missing)} "
            f"(found: {', '.join(map(str, raw.columns)) or 'none'})"
        )
    return raw[list(mapping)].rename(columns=mapping)


def _text(s: pd.Series) -> pd.Series:
    out = s.astype("string").str.strip()
    return out.mask(out.str.lower().isin(_MISSING_TEXT))


def _bad(source: str, what: str, raw: pd.Series, bad: pd.Series) -> LogFormatError:
    idx = bad[bad].index[0]
    return LogFormatError(
        f"{source}: {int(bad.sum())} rows with unparseable {what}, "
        f"e.g. row {int(idx) + 1}: {raw.loc[idx]!r}"
    )


def _customer_ids(s: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s):
        num = pd.to_numeric(s, errors="coerce")
        whole = num.notna() & (num % 1 == 0)
        out = pd.Series(pd.NA, index=s.index, dtype="string")
        out[whole] = num[whole].astype("int64").astype(str)
        return out
    text = _text(s)
    return text.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)


def normalise(raw: pd.DataFrame, source: str = "log") -> pd.DataFrame:
    """Rename either UCI naming to :data:`COLUMNS` and parse the types; reject bad values."""
    df = _rename(raw, source).reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    out["invoice_id"] = _text(df["invoice_id"])
    out["stock_code"] = _text(df["stock_code"])
    for col in ("invoice_id", "stock_code"):
        if out[col].isna().any():
            raise _bad(source, f"{DISPLAY[col]} (empty)", df[col], out[col].isna())
    out["description"] = _text(df["description"])

    qty = pd.to_numeric(df["quantity"], errors="coerce")
    bad_q = qty.isna() | (qty % 1 != 0)
    if bad_q.any():
        raise _bad(source, "Quantity", df["quantity"], bad_q)
    out["quantity"] = qty.astype("int64")

    if pd.api.types.is_datetime64_any_dtype(df["invoiced_at"]):
        when = df["invoiced_at"]
    else:
        when = pd.to_datetime(df["invoiced_at"].astype("string"), errors="coerce", format="mixed")
    if getattr(when.dt, "tz", None) is not None:
        when = when.dt.tz_localize(None)
    bad_d = when.isna()
    if bad_d.any():
        raise _bad(source, "InvoiceDate", df["invoiced_at"], bad_d)
    out["invoiced_at"] = when.astype("datetime64[us]")

    price = pd.to_numeric(df["unit_price"], errors="coerce")
    bad_p = price.isna()
    if bad_p.any():
        raise _bad(source, "Price", df["unit_price"], bad_p)
    out["unit_price"] = price.astype("float64")
    out["customer_id"] = _customer_ids(df["customer_id"])
    out["country"] = _text(df["country"])
    return out
