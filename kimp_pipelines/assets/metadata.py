"""Metadata every asset attaches: rows, time coverage, a preview; plots as inline PNG markdown."""

from __future__ import annotations

import base64
from typing import Any

import polars as pl
from dagster import MetadataValue


def table_metadata(frame: pl.DataFrame, *, preview_rows: int = 5) -> dict[str, Any]:
    meta: dict[str, Any] = {"dagster/row_count": frame.height, "columns": frame.width}
    if "ts" in frame.columns and frame.height:
        meta["first_ts"] = frame["ts"].min().isoformat()  # type: ignore[union-attr]
        meta["last_ts"] = frame["ts"].max().isoformat()  # type: ignore[union-attr]
    if frame.height:
        with pl.Config(
            tbl_formatting="MARKDOWN",
            tbl_hide_column_data_types=True,
            tbl_hide_dataframe_shape=True,
            tbl_cols=14,
            fmt_str_lengths=60,
        ):
            meta["preview"] = MetadataValue.md(str(frame.head(preview_rows)))
    return meta


def png_markdown(png: bytes, alt: str) -> MetadataValue:
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
