"""The inputs of a research period: premium table and feature frame, in plain Python (no Dagster).

Candle periods go through the files source (kimp.market_data.files) and kimp.premium.compute_premium day
by day, exactly as the ``kimchi_premium`` asset does; daily periods read the ready-made daily premium
(kimp.sentiment.study.daily_premium, Upbit vs Bitstamp) because the shared data hold no Binance daily
candles. Features come from kimp.features.build_features over the whole range at once (a day computed
alone equals the same day inside a longer run: tests/test_features_honesty.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from kimp.errors import MarketDataError
from kimp.research.periods import KIMPLOG, Period
from kimp.timeutil import days_between

log = logging.getLogger(__name__)


@dataclass
class PeriodInputs:
    """What the walk-forward of one period reads: the premium table and the features (with history)."""

    premium: pl.DataFrame
    features: pl.DataFrame
    interval_s: int
    candles: pl.DataFrame  # the Korean venue's candles (the price target's input) and the foreign leg's
    unavailable: dict[str, str]


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def data_start(first_day: date, window_days: int, lookback_days: int) -> date:
    """First day read: the first predicted day's training window and the features' look-back before it."""
    return first_day - timedelta(days=window_days + 2 + lookback_days)


def file_view(data_dir: Path, period: Period, work_dir: Path) -> Path:
    """A folder of links to exactly the period's files, so the files source sees nothing else (the
    shared folder also holds other intervals and venues, some with known bad rows)."""
    view = work_dir / "sources" / period.name
    view.mkdir(parents=True, exist_ok=True)
    for rel in period.files:
        target = (data_dir / rel).resolve()
        if not target.is_file():
            raise MarketDataError(
                source="files",
                partition=None,
                problem=f"research period {period.name}: file {rel!r} is missing under {data_dir}",
                expected="KIMP_DATA_DIR pointing at the shared real-data folder (../shared/data/real)",
            )
        link = view / Path(rel).name
        if link.is_symlink() or link.exists():
            if link.resolve() == target:
                continue
            link.unlink()
        os.symlink(target, link)
    return view


def _candle_premium(
    period: Period, data_dir: Path, work_dir: Path, first: date, last: date
) -> tuple[pl.DataFrame, ...]:
    from kimp.market_data.files import FilesSource
    from kimp.premium import FX_LOOKBACK_DAYS, compute_premium

    src = FilesSource(file_view(data_dir, period, work_dir))
    days = days_between(first - timedelta(days=FX_LOOKBACK_DAYS), last)
    fx_days = {d: src.fx(d) for d in days}
    candles, premium = [], []
    for i, day in enumerate(days):
        if i < FX_LOOKBACK_DAYS:
            continue
        kr = src.candles(period.kr_venue, day)
        bn = src.candles("binance", day)
        kr = kr.filter(pl.col("interval_s") == period.interval_s)
        bn = bn.filter(pl.col("interval_s") == period.interval_s)
        if kr.height == 0:  # a hole in the Korean files (intraday Upbit blocks): no premium that day
            continue
        fx = pl.concat([fx_days[d] for d in days[i - FX_LOOKBACK_DAYS : i + 1]], how="vertical_relaxed")
        premium.append(compute_premium({period.kr_venue: kr}, bn, fx, day=day))
        candles += [kr, bn]
    fx_all = pl.concat(list(fx_days.values()), how="vertical_relaxed")
    return (
        pl.concat(premium, how="vertical_relaxed"),
        pl.concat(candles, how="vertical_relaxed"),
        fx_all,
    )


def period_market(
    period: Period, data_dir: Path, work_dir: Path, first: date, last: date
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    """(premium, candles, fx) of ``period`` from day ``first`` to ``last`` (inclusive): what the features
    and the backtest read (fx is None for the daily periods, whose premium file holds its rate)."""
    end = _utc(last) + timedelta(days=1)
    fx: pl.DataFrame | None = None
    if period.kind == "daily_premium":
        from kimp.sentiment.study import daily_candles, daily_premium

        lo = _utc(first)
        premium = daily_premium(data_dir / KIMPLOG).filter((pl.col("ts") >= lo) & (pl.col("ts") < end))
        candles = daily_candles(data_dir / "investing_daily").filter(
            (pl.col("ts") >= lo) & (pl.col("ts") < end)
        )
    else:
        premium, candles, fx = _candle_premium(period, data_dir, work_dir, first, last)
    if premium.height == 0:
        raise MarketDataError(
            source="research",
            partition=None,
            problem=f"period {period.name}: no premium rows between {first} and {last}",
            expected=f"data of {', '.join(period.files)} covering the period",
        )
    return premium, candles, fx


def period_inputs(
    period: Period,
    data_dir: Path,
    work_dir: Path,
    *,
    window_days: int,
    first_day: date | None = None,
    last_day: date | None = None,
) -> PeriodInputs:
    """Premium and features of ``period`` from the window before its first predicted day (``first_day``,
    default the period's start) to its last (``last_day``, default its end)."""
    from kimp.features import FeatureConfig, FeatureInputs, build_features, lookback_days

    config = FeatureConfig(coins=period.coins, kr_venues=(period.kr_venue,))
    look = max(lookback_days(config).values())
    first_day, last_day = first_day or period.start, last_day or period.end
    first = data_start(first_day, window_days, look)
    end = _utc(last_day) + timedelta(days=1)
    premium, candles, fx = period_market(period, data_dir, work_dir, first, last_day)
    inputs = FeatureInputs(premium=premium, candles=candles, fx=fx)
    feature_start = _utc(first + timedelta(days=look))
    result = build_features(inputs, start=feature_start, end=end, config=config)
    frame = result.frame
    # Columns null on every row or constant carry nothing here (hourly data lack order books, on-chain...).
    names = [c for c in frame.columns if c not in ("ts", "coin", "interval_s")]
    stats = frame.select([pl.col(c).drop_nulls().n_unique().alias(c) for c in names]).row(0, named=True)
    keep = [c for c in names if stats[c] > 1]
    log.info(
        "research %s: %d feature rows, %d of %d features vary (the rest are null or constant)",
        period.name,
        frame.height,
        len(keep),
        len(names),
    )
    return PeriodInputs(
        premium=premium,
        features=frame.select("ts", "coin", "interval_s", *keep),
        interval_s=result.interval_s,
        candles=candles,
        unavailable=result.unavailable,
    )
