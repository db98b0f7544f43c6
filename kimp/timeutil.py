"""UTC day arithmetic. A partition D covers bar open times in [D 00:00 UTC, D+1 00:00 UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

DAY = timedelta(days=1)


def parse_day(value: str | date | datetime) -> date:
    """Accept 'YYYY-MM-DD', a date, or a datetime (its UTC date)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = day_start(day)
    return start, start + DAY


def days_between(start: date, end: date) -> list[date]:
    """Inclusive list of days from start to end."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def in_day(frame: pl.DataFrame, day: date, column: str = "ts") -> pl.DataFrame:
    """Rows whose ``column`` falls inside the UTC day."""
    lo, hi = day_bounds(day)
    return frame.filter((pl.col(column) >= lo) & (pl.col(column) < hi))
