"""The coverage rule of a day partition, in one place: which series a partition holds, how many of the bars a
whole day should have, and whether a new partition holds at least what the stored one does.

A *series* is one group of a table (candles: symbol and interval; order books: venue and symbol; FX: series;
on-chain: coin; macro: series; news: the whole table). For a series with a regular bar length under a day,
a complete day has ``86400 / interval`` bars; the day is complete enough when no stretch longer than the gap
threshold is missing at its start or its end (the ``gaps`` check looks between bars).

The stored partition sets the floor for a re-run: the new one must hold every stored series, at least as many
rows, and every clock hour the stored one had. Less is refused (the stored file stays as it was) unless the
user accepts it (``kimp materialize --allow-shrink``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import polars as pl

from kimp.timeutil import day_bounds

DAY_S = 86_400


@dataclass(frozen=True)
class SeriesCoverage:
    """What one series of a partition holds."""

    key: tuple[object, ...]
    label: str  # "BTC/KRW 1h", "daily_close", ...
    rows: int
    hours: frozenset[int]  # clock hours (0..23, UTC) with at least one row
    first: datetime | None
    last: datetime | None
    interval_s: int | None  # regular bar length, None for irregular series

    @property
    def expected(self) -> int | None:
        """Bars a complete day holds, for regular series shorter than a day."""
        if self.interval_s is None or self.interval_s >= DAY_S:
            return None
        return DAY_S // self.interval_s

    def describe(self) -> str:
        return f"{self.label}: {self.amount()}"

    def amount(self) -> str:
        """'12 of 24 bars (00:00-12:00 UTC)', '3 rows (06:30-22:00 UTC)' or 'no rows'."""
        if self.rows == 0 or self.first is None or self.last is None:
            return "no rows"
        if self.interval_s:  # bars: from the first one's open to the last one's close
            end = self.last + timedelta(seconds=self.interval_s)
            close = "24:00" if end.date() > self.first.date() and end.time() == time(0) else f"{end:%H:%M}"
            span = f"{self.first:%H:%M}-{close}"
        else:
            span = f"{self.first:%H:%M}-{self.last:%H:%M}"
        unit = "bar" if self.interval_s else "row"
        count = f"{self.rows} of {self.expected} {unit}s" if self.expected else _plural(self.rows, unit)
        return f"{count} ({span} UTC)"


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def interval_label(seconds: int) -> str:
    for unit, size in (("d", DAY_S), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def series_coverage(
    frame: pl.DataFrame, group: tuple[str, ...], interval: str | int | None
) -> dict[tuple[object, ...], SeriesCoverage]:
    """One SeriesCoverage per group of ``frame`` (``interval``: a column holding the bar length, a fixed
    length in seconds, or None for irregular series)."""
    if frame.height == 0 or "ts" not in frame.columns:
        return {}
    keys = [c for c in group if c in frame.columns]
    aggs = [
        pl.len().alias("_rows"),
        pl.col("ts").min().alias("_first"),
        pl.col("ts").max().alias("_last"),
        # a list per group (group_by); a single list for a table without groups
        (pl.col("ts").dt.hour().unique() if keys else pl.col("ts").dt.hour().unique().implode()).alias(
            "_hours"
        ),
    ]
    if isinstance(interval, str) and interval in frame.columns:
        aggs.append(pl.col(interval).first().alias("_interval"))
    summary = frame.group_by(keys, maintain_order=True).agg(aggs) if keys else frame.select(aggs)
    out: dict[tuple[object, ...], SeriesCoverage] = {}
    for row in summary.iter_rows(named=True):
        key = tuple(row[k] for k in keys)
        step = row.get("_interval") if isinstance(interval, str) else interval
        parts = [str(v) for v in key if not isinstance(v, int)]
        if step:
            parts.append(interval_label(int(step)))
        out[key] = SeriesCoverage(
            key=key,
            label=" ".join(parts) or "all rows",
            rows=int(row["_rows"]),
            hours=frozenset(int(h) for h in row["_hours"]),
            first=row["_first"],
            last=row["_last"],
            interval_s=int(step) if step else None,
        )
    return out


def incomplete_day(
    coverage: dict[tuple[object, ...], SeriesCoverage], day: date, max_gap_s: int
) -> list[str]:
    """Series whose bars stop short of the day's start or end by more than ``max_gap_s``."""
    start, end = day_bounds(day)
    problems = []
    for cov in coverage.values():
        if cov.expected is None or cov.first is None or cov.last is None or cov.interval_s is None:
            continue
        missing = []
        lead = (cov.first - start).total_seconds()
        trail = (end - (cov.last + timedelta(seconds=cov.interval_s))).total_seconds()
        if lead > max_gap_s:
            missing.append(f"00:00-{cov.first:%H:%M}")
        if trail > max_gap_s:
            missing.append(f"{cov.last + timedelta(seconds=cov.interval_s):%H:%M}-24:00")
        if missing:
            problems.append(f"{cov.describe()}: nothing in {' and '.join(missing)}")
    return problems


def shrinkage(
    stored: dict[tuple[object, ...], SeriesCoverage], new: dict[tuple[object, ...], SeriesCoverage]
) -> list[str]:
    """What the new partition lacks that the stored one has: series, rows, clock hours."""
    problems = []
    for key, old in stored.items():
        if old.rows == 0:
            continue
        cur = new.get(key)
        if cur is None or cur.rows == 0:
            problems.append(f"{old.label}: nothing (stored: {old.amount()})")
            continue
        lost_hours = sorted(old.hours - cur.hours)
        if cur.rows < old.rows or lost_hours:
            what = f"{old.label}: {cur.amount()}, stored {old.amount()}"
            if lost_hours:
                what += f", hours now missing {_hour_ranges(lost_hours)} UTC"
            problems.append(what)
    return problems


def _hour_ranges(hours: list[int]) -> str:
    """[0, 1, 2, 5] -> '00-02h, 05h'."""
    ranges: list[tuple[int, int]] = []
    for h in hours:
        if ranges and h == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], h)
        else:
            ranges.append((h, h))
    return ", ".join(f"{a:02d}h" if a == b else f"{a:02d}-{b:02d}h" for a, b in ranges)
