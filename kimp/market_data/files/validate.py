"""Checks on a parsed file: structural ones raise FileProblem (the file fails every call that reads it);
row-level ones fill the ``problem`` column (only the days holding those rows fail).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import polars as pl

from kimp.market_data.files.discovery import FileSpec
from kimp.market_data.files.formats import RawTable
from kimp.market_data.files.parsing import FileProblem

log = logging.getLogger(__name__)

PRICE_COLS: tuple[str, ...] = ("open", "high", "low", "close")
SAMPLE = 10


def check_order(spec: FileSpec, raw: RawTable) -> pl.DataFrame:
    """Check the order the format promises; return the frame sorted ascending by ts (stable)."""
    f = raw.frame
    if f.height < 2 or raw.order == "any":
        return f.sort("ts", maintain_order=True)
    step = f["ts"].diff().dt.total_microseconds()
    back = (step < 0).fill_null(False)
    fwd = (step > 0).fill_null(False)
    if raw.order == "ascending" and back.any():
        rows = _with_prev(f, back)
        raise FileProblem(
            spec.label,
            f"timestamps are not in ascending order ({int(back.sum())} step(s) go back in time)",
            f"a {raw.fmt} file sorted by time, oldest first",
            rows,
        )
    if raw.order == "either" and back.any() and fwd.any():
        minority = back if back.sum() <= fwd.sum() else fwd
        raise FileProblem(
            spec.label,
            "timestamps are neither ascending nor descending "
            f"({int(fwd.sum())} steps forward, {int(back.sum())} back)",
            f"a {raw.fmt} file sorted by time, newest first or oldest first",
            _with_prev(f, minority),
        )
    return f.sort("ts", maintain_order=True)


def _with_prev(f: pl.DataFrame, mask: pl.Series) -> pl.DataFrame:
    return f.select("line", "ts", pl.col("ts").shift(1).alias("previous_ts")).filter(mask).head(SAMPLE)


def check_interval(spec: FileSpec, frame: pl.DataFrame) -> None:
    """The interval in the name must equal the median spacing of the distinct timestamps.

    Also accepted: a median that is a whole multiple of the interval when the smallest spacing equals it.
    """
    if spec.interval_s is None:
        return
    uniq = frame["ts"].unique().sort()
    if uniq.len() < 2:
        return
    spacing = uniq.diff().drop_nulls().dt.total_seconds()
    median = float(spacing.median())  # type: ignore[arg-type]
    smallest = int(spacing.min())  # type: ignore[arg-type]
    # Gappy series (weekday-only FX, Upbit minutes without trades) may have a median that is a whole multiple
    # of the interval; then the smallest spacing must be the interval itself.
    gappy_ok = smallest == spec.interval_s and median % spec.interval_s == 0
    if median != spec.interval_s and not gappy_ok:
        sample = frame.select("line", "ts").unique("ts", keep="first", maintain_order=True).head(6)
        sample = sample.with_columns(pl.col("ts").diff().dt.total_seconds().alias("spacing_s"))
        raise FileProblem(
            spec.label,
            f"the interval in the name ({spec.interval_s} s) contradicts the data: "
            f"median spacing between timestamps is {median:g} s (smallest {smallest} s)",
            f"bars {spec.interval_s} s apart (rename the file or fix its content)",
            sample,
        )


def _with_problems(frame: pl.DataFrame, checks: Sequence[tuple[pl.Expr, str]]) -> pl.DataFrame:
    """Append the text of every true condition to ``problem`` ('; '-separated, null when none holds)."""
    if "problem" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("problem"))
    if not checks:
        return frame
    parts = [pl.col("problem")] + [pl.when(cond).then(pl.lit(text)) for cond, text in checks]
    joined = pl.concat_str(parts, separator="; ", ignore_nulls=True)
    return frame.with_columns(pl.when(joined == "").then(None).otherwise(joined).alias("problem"))


def mark_price_defects(
    frame: pl.DataFrame,
    required: Sequence[str],
    optional_prices: Sequence[str] = (),
    volumes: Sequence[str] = (),
) -> pl.DataFrame:
    """Fill ``problem`` for NaN/empty/infinite or non-positive prices and negative/infinite volumes.

    NaN volumes become null (unknown volume), like empty ones.
    """
    frame = frame.with_columns(
        [pl.when(pl.col(c).is_nan()).then(None).otherwise(pl.col(c)).alias(c) for c in volumes]
        + [pl.when(pl.col(c).is_nan()).then(None).otherwise(pl.col(c)).alias(c) for c in optional_prices]
    )
    checks: list[tuple[pl.Expr, str]] = []
    for c in required:
        missing = pl.col(c).is_null() | pl.col(c).is_nan() | pl.col(c).is_infinite()
        checks.append((missing, f"{c} is empty/NaN/infinite"))
        checks.append(((~missing) & (pl.col(c) <= 0), f"{c} <= 0"))
    for c in optional_prices:
        checks.append((pl.col(c).is_infinite() | (pl.col(c) <= 0), f"{c} <= 0 or infinite"))
    for c in volumes:
        checks.append((pl.col(c).is_infinite() | (pl.col(c) < 0), f"{c} negative or infinite"))
    return _with_problems(frame, checks)


def dedupe(
    frame: pl.DataFrame,
    *,
    keys: Sequence[str],
    values: Sequence[str],
    what: str,
    level: int = logging.WARNING,
) -> pl.DataFrame:
    """Drop identical duplicate rows (logged at ``level``); mark rows that share keys but differ as conflicting."""
    if frame.height < 2:
        return frame
    keys, values = list(keys), list(values)
    nvals = pl.struct(values).n_unique().over(keys)
    conflict = nvals > 1
    frame = _with_problems(frame, [(conflict, "conflicting duplicate: same timestamp, different values")])
    keep = frame.select(conflict | pl.struct([*keys, *values]).is_first_distinct()).to_series()
    dropped = frame.filter(~keep)
    if dropped.height:
        log.log(
            level,
            "%s: dropped %d identical duplicate row(s) at %s%s",
            what,
            dropped.height,
            [str(t) for t in dropped["ts"].head(5).to_list()],
            " ..." if dropped.height > 5 else "",
        )
        frame = frame.filter(keep)
    return frame
