"""Low-level parsing of string columns into UTC timestamps and floats, with the rows that failed.

Every reader first loads a file as strings (so nothing is silently coerced), then converts the columns it needs
here. A value that is present but cannot be parsed is reported, never turned into a null.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from kimp.market_data.schemas import UTC_TS

# YYYY-MM-DD, optional [T ]HH:MM[:SS[.fff]], optional zone: Z, UTC, +HH:MM, +HHMM.
_ISO_RE = (
    r"^(\d{4}-\d{2}-\d{2})"
    r"(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?))?"
    r"\s*(Z|z|UTC|utc|[+-]\d{2}:?\d{2})?$"
)
_OFFSET_RE = r"^([+-])(\d{2}):?(\d{2})$"


class FileProblem(Exception):
    """A defect found while reading one file. FilesSource turns it into a MarketDataError for the day asked."""

    def __init__(self, file: str, problem: str, expected: str, rows: pl.DataFrame | None = None) -> None:
        self.file = file
        self.problem = problem
        self.expected = expected
        self.rows = rows
        super().__init__(f"{file}: {problem} (expected: {expected})")


def _clean_expr(col: str) -> pl.Expr:
    t = pl.col(col).cast(pl.String).str.strip_chars()
    return pl.when(t == "").then(None).otherwise(t)


def parse_iso_utc(frame: pl.DataFrame, col: str, *, naive_offset_minutes: int = 0) -> pl.Series:
    """Parse ISO-8601 strings to Datetime(us, UTC); null where the string is missing or unparseable.

    A value without a zone is taken to be at ``naive_offset_minutes`` east of UTC (0: UTC; 540: KST).
    An explicit offset (``+09:00``) is honoured, ``Z``/``UTC`` mean UTC.
    """
    g = frame.select(_clean_expr(col).str.extract_groups(_ISO_RE).alias("g")).unnest("g")
    g.columns = ["d", "t", "z"]
    naive_str = pl.col("d") + pl.lit(" ") + pl.col("t").fill_null("00:00")
    naive = pl.coalesce(
        naive_str.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
        naive_str.str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_unit="us"),
    )
    off = pl.col("z").str.extract_groups(_OFFSET_RE)
    sign = pl.when(off.struct.field("1") == "-").then(-1).otherwise(1)
    minutes = sign * (off.struct.field("2").cast(pl.Int64) * 60 + off.struct.field("3").cast(pl.Int64))
    offset_min = (
        pl.when(pl.col("z").is_null())
        .then(pl.lit(naive_offset_minutes, dtype=pl.Int64))
        .when(pl.col("z").str.to_uppercase().is_in(["Z", "UTC"]))
        .then(pl.lit(0, dtype=pl.Int64))
        .otherwise(minutes)
    )
    out = g.select(
        (naive - pl.duration(minutes=offset_min)).dt.replace_time_zone("UTC").cast(UTC_TS).alias(col)
    )
    return out.to_series()


def epoch_to_utc(frame: pl.DataFrame, col: str, *, allow_seconds: bool = False) -> pl.Series:
    """Integer epoch times to Datetime(us, UTC), unit detected per value by magnitude.

    >= 1e14: microseconds (Binance spot files from 2025 on); >= 1e11: milliseconds; else seconds when
    ``allow_seconds``, otherwise null (reported as unparseable by the caller).
    """
    v = _clean_expr(col).cast(pl.Int64, strict=False)
    us = (
        pl.when(v >= 10**14)
        .then(v)
        .when(v >= 10**11)
        .then(v * 1_000)
        .when((v >= 10**8) & pl.lit(allow_seconds))
        .then(v * 1_000_000)
        .otherwise(None)
    )
    return frame.select(pl.from_epoch(us, time_unit="us").dt.replace_time_zone("UTC").alias(col)).to_series()


def to_float(frame: pl.DataFrame, col: str) -> pl.Series:
    """Strings to Float64 ('NaN' stays NaN, empty becomes null, garbage becomes null: check with bad_cells)."""
    return frame.select(_clean_expr(col).cast(pl.Float64, strict=False).alias(col)).to_series()


def bad_cells(
    raw: pl.DataFrame, parsed: pl.DataFrame, cols: Sequence[str], line_col: str = "line"
) -> pl.DataFrame:
    """Cells that were present in ``raw`` but came out null in ``parsed``: (line, column, value)."""
    parts = []
    for c in cols:
        present = raw.select(_clean_expr(c).is_not_null()).to_series()
        failed = present & parsed[c].is_null()
        if failed.any():
            parts.append(
                pl.DataFrame(
                    {
                        line_col: raw[line_col].filter(failed),
                        "column": pl.Series([c] * int(failed.sum()), dtype=pl.String),
                        "value": raw[c].cast(pl.String).filter(failed),
                    }
                )
            )
    if not parts:
        return pl.DataFrame(schema={line_col: pl.Int64, "column": pl.String, "value": pl.String})
    return pl.concat(parts).sort(line_col)


def missing_cells(raw: pl.DataFrame, cols: Sequence[str], line_col: str = "line") -> pl.DataFrame:
    """Rows where any of ``cols`` is empty: (line, column)."""
    parts = []
    for c in cols:
        empty = raw.select(_clean_expr(c).is_null()).to_series()
        if empty.any():
            parts.append(
                pl.DataFrame(
                    {
                        line_col: raw[line_col].filter(empty),
                        "column": pl.Series([c] * int(empty.sum()), dtype=pl.String),
                        "value": pl.Series([None] * int(empty.sum()), dtype=pl.String),
                    }
                )
            )
    if not parts:
        return pl.DataFrame(schema={line_col: pl.Int64, "column": pl.String, "value": pl.String})
    return pl.concat(parts).sort(line_col)
