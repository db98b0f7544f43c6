"""Metadata every asset attaches: counts, time coverage, tables and plots, in forms the Dagster UI renders.

Tables are Dagster table metadata (``MetadataValue.table`` with a schema), never polars' Markdown output:
the UI draws them as real tables (wide ones scroll instead of wrapping), and every value is JSON the UI can
parse (NaN and infinities become null, floats are rounded for reading). Counts are the stored table's own:
``columns`` is the Parquet file's column count, and ``dagster/column_schema`` lists those columns.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import polars as pl
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

DIGITS = 6  # significant digits of floats shown in tables
MAX_ROWS = 200  # a table in the UI is for reading; the asset's value (`kimp sql`) holds every row


def _column_type(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if isinstance(dtype, pl.Datetime):
        return f"datetime ({dtype.time_zone or 'naive'})"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Duration:
        return "duration"
    if dtype.is_nested():
        return "json"
    return "string"


def column_schema(frame: pl.DataFrame | Mapping[str, pl.DataType]) -> TableSchema:
    """The columns of a stored table (name and type), for ``dagster/column_schema``."""
    schema = frame.schema if isinstance(frame, pl.DataFrame) else frame
    return TableSchema(columns=[TableColumn(name=n, type=_column_type(t)) for n, t in schema.items()])


def _cell(value: Any, digits: int) -> str | int | float | bool | None:
    """A value the UI's JSON parser accepts: no NaN/inf, dates as ISO text, nested values as JSON text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(f"{value:.{digits}g}")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return json.dumps(value, default=str)


def frame_table(frame: pl.DataFrame, *, max_rows: int = MAX_ROWS, digits: int = DIGITS) -> MetadataValue:
    """A polars frame (its first ``max_rows`` rows) as a Dagster table with a schema."""
    head = frame.head(max_rows)
    records = [
        TableRecord(data={k: _cell(v, digits) for k, v in row.items()}) for row in head.iter_rows(named=True)
    ]
    return MetadataValue.table(records=records, schema=column_schema(frame))


def mapping_table(
    mapping: Mapping[str, Any], *, key: str = "name", value: str = "value", digits: int = DIGITS
) -> MetadataValue:
    """A mapping as a two-column table (``key``, ``value``); a mapping of mappings (e.g. parameters per
    study) as one row per key and one column per inner key."""
    items = list(mapping.items())
    if items and all(isinstance(v, Mapping) for _, v in items):
        inner = list(dict.fromkeys(k for _, v in items for k in v))
        rows = [{key: str(k), **{c: v.get(c) for c in inner}} for k, v in items]
    else:
        rows = [{key: str(k), value: v} for k, v in items]
        inner = [value]
    columns = [key, *inner]
    records = [TableRecord(data={c: _cell(r.get(c), digits) for c in columns}) for r in rows]
    types = {c: _python_type([r.get(c) for r in rows]) for c in inner}
    schema = TableSchema(
        columns=[TableColumn(name=key), *[TableColumn(name=c, type=types[c]) for c in inner]]
    )
    return MetadataValue.table(records=records, schema=schema)


def _python_type(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def list_table(values: Sequence[Any], *, column: str = "name", rank: str = "rank") -> MetadataValue:
    """A list as a table: its 1-based position and the value."""
    frame = pl.DataFrame({rank: list(range(1, len(values) + 1)), column: [str(v) for v in values]})
    return frame_table(frame, max_rows=len(values))


def table_metadata(
    frame: pl.DataFrame, *, preview_rows: int = 5, preview_columns: Sequence[str] | None = None
) -> dict[str, Any]:
    """Rows, columns and time coverage of a table as stored, its column schema, and a preview of its first
    ``preview_rows`` rows (of ``preview_columns`` when the table is too wide to read; none when 0)."""
    meta: dict[str, Any] = {
        "dagster/row_count": frame.height,
        "columns": frame.width,
        "dagster/column_schema": column_schema(frame),
    }
    if "ts" in frame.columns and frame.height:
        meta["first_ts"] = frame["ts"].min().isoformat()  # type: ignore[union-attr]
        meta["last_ts"] = frame["ts"].max().isoformat()  # type: ignore[union-attr]
    if frame.height and preview_rows > 0:
        shown = frame.select(preview_columns) if preview_columns is not None else frame
        meta["preview"] = frame_table(shown, max_rows=preview_rows)
    return meta


def png_markdown(png: bytes, alt: str) -> MetadataValue:
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
