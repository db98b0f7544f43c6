"""The after-cost backtest of a research run's out-of-sample predictions, through the product's backtest.

For one period and horizon, every predicted day goes through :func:`kimp.backtest.daily.backtest_day`
(what the ``backtest_report`` asset runs), scenario ``normal``, on the period's Korean venue (Bithumb for
the hourly periods, Upbit for the daily and intraday ones) with that venue's fees (kimp.backtest.config
.CostConfig), each day continuing from the previous day's rows (positions carried across days, the
default of the daily reports). The strategies are the registered ones (kimp.backtest.strategies): the
z-score rule (the baseline) and the prediction rule on a model's predictions, with their default
parameters or ``BacktestSettings.params`` (nothing chosen on these periods). The range figures are
:func:`kimp.reporting.summaries.range_rows` over the chained days: one run over the period.

A day the backtest cannot run (a hole in the Korean candles, gaps longer than the engine allows) is
skipped and said so; the next day continues the chain from the last day that ran (the engine notes the
missing bars). Without order books both engines give the same figures, so only the vectorized engine
runs (``DayConfig.engines``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from kimp.errors import KimpError
from kimp.models.walk_forward import PREDICTIONS
from kimp.research.periods import Period

log = logging.getLogger(__name__)

# The prediction strategies traded by default: the product ensemble (the validated choice among members,
# mixture and baselines) and the persistence baseline's predictions through the same rule.
DEFAULT_MODELS: tuple[str, ...] = ("ensemble", "persistence")
BASELINE = "zscore"
# Slippage per fill where candles lack the volume the default (volume-scaled) models need: conservative
# against the default sqrt model's ~0.5-1 bp for orders far smaller than a day's volume.
FIXED_SLIPPAGE_BPS = 2.0
FIGURES = (
    "total_return",
    "annualized_return",
    "sharpe",
    "max_drawdown",
    "trades",
    "round_trips",
    "turnover",
    "cost_total",
    "cost_fees",
    "pnl",
)


@dataclass
class PeriodBacktest:
    """Range rows (one per strategy and coin, plus ``coin = "all"``: the equal-capital mean of the
    coins' daily returns), the per-day rows, and the days skipped with the reason."""

    ranges: pl.DataFrame
    days: pl.DataFrame
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _by_day(frame: pl.DataFrame) -> dict[date, pl.DataFrame]:
    """The rows of each UTC day (split once: filtering the whole table per day cost more than the runs)."""
    if not frame.height:
        return {}
    parts = frame.with_columns(_day=pl.col("ts").dt.date()).partition_by("_day", as_dict=True)
    return {key[0]: part.drop("_day") for key, part in parts.items()}  # type: ignore[index]


def _bars_without_volume(
    premium: pl.DataFrame, candles: pl.DataFrame, period: Period, predictions: pl.DataFrame
) -> int:
    """Premium bars of the predicted days whose Korean or foreign candle has no volume (or is missing)."""
    if not predictions.height:
        return 0
    days = predictions["ts"].dt.date().unique().implode()
    bars = premium.filter(
        (pl.col("kr_venue") == period.kr_venue) & pl.col("ts").dt.date().is_in(days)
    ).select("ts", "coin")
    missing = 0
    for venue in (period.kr_venue, "binance"):
        vol = candles.filter(pl.col("venue") == venue).select(
            "ts", coin=pl.col("base"), volume=pl.col("volume")
        )
        joined = bars.join(vol, on=["ts", "coin"], how="left")["volume"]
        missing += int((joined.is_null() | joined.is_nan().fill_null(False)).sum())
    return missing


def backtest_period(
    period: Period,
    *,
    premium: pl.DataFrame,
    candles: pl.DataFrame,
    predictions: pl.DataFrame,
    models: tuple[str, ...] = DEFAULT_MODELS,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 7,
) -> PeriodBacktest:
    """Backtest ``predictions`` (a research run's ``predictions/<period>_<h>h.parquet``) of ``models``
    against the z-score rule over the predicted days, positions carried (module docstring)."""
    from kimp.backtest.config import CostConfig, ImpactModel, SlippageModel
    from kimp.backtest.daily import DayConfig, backtest_day
    from kimp.reporting.summaries import range_rows

    present = set(predictions["model"].unique().to_list()) if predictions.height else set()
    costs, cost_note = CostConfig(), None
    missing = _bars_without_volume(premium, candles, period, predictions)
    if missing:
        # Volume-scaled slippage and impact need every bar's volume; the daily Bitstamp file has none in
        # 2021 (docs/research.md). Such a period pays a fixed slippage instead, no impact, same fees.
        costs = CostConfig(
            slippage=SlippageModel(kind="fixed", fixed_bps=FIXED_SLIPPAGE_BPS), impact=ImpactModel(coef=0.0)
        )
        cost_note = (
            f"{missing} bars without a candle volume on one leg: fixed slippage "
            f"{FIXED_SLIPPAGE_BPS} bp per fill and no impact instead of the volume-scaled models"
        )
    chosen = tuple(m for m in models if m in present)
    config = DayConfig(
        strategies=(BASELINE, *chosen),
        coins=period.coins,
        kr_venues=(period.kr_venue,),
        params=dict(params or {}),
        seed=seed,
        carry=True,
        engines=("vectorized",),  # no order books here: the event-driven engine gives the same figures
        costs=costs,
    )
    preds = predictions.filter(pl.col("model").is_in(list(chosen))).select(list(PREDICTIONS))
    days = sorted(predictions["ts"].dt.date().unique().to_list()) if predictions.height else []
    premium_days = _by_day(premium.filter(pl.col("kr_venue") == period.kr_venue))
    candle_days = _by_day(candles)
    pred_days = _by_day(preds)
    empty = {"premium": premium.head(0), "candles": candles.head(0), "preds": preds.head(0)}
    rows: list[pl.DataFrame] = []
    skipped: list[str] = []
    previous: pl.DataFrame | None = None
    for day in days:
        try:
            out = backtest_day(
                day,
                "normal",
                premium=premium_days.get(day, empty["premium"]),
                candles=candle_days.get(day, empty["candles"]),
                orderbook=pl.DataFrame(),
                config=config,
                predictions=pred_days.get(day, empty["preds"]),
                previous=previous,
            )
        except (KimpError, ValueError) as exc:  # one bad day must not cost the period its backtest
            skipped.append(f"{day}: {exc}".splitlines()[0])
            log.warning("research backtest %s %s: %s", period.name, day, exc)
            continue
        previous = out.frame
        rows.append(out.frame.drop("carry"))
    notes = [cost_note] if cost_note else []
    if not rows:
        return PeriodBacktest(pl.DataFrame(), pl.DataFrame(), skipped, notes)
    daily = pl.concat(rows, how="diagonal_relaxed")
    ranges = range_rows(daily)
    per_day = daily.drop("equity", "position")
    mean = (
        per_day.group_by("strategy", "date")
        .agg(pl.col("total_return").mean())
        .group_by("strategy")
        .agg(total_return=(pl.col("total_return") + 1).product() - 1, days=pl.len())
    )
    sums = per_day.group_by("strategy").agg(
        pl.col("trades").sum(), pl.col("cost_total").sum(), pl.col("cost_fees").sum()
    )
    allcoins = mean.join(sums, on="strategy").with_columns(coin=pl.lit("all"))
    ranges = pl.concat([ranges, allcoins], how="diagonal_relaxed").sort("strategy", "coin")
    return PeriodBacktest(ranges=ranges, days=per_day, skipped=skipped, notes=notes)


def backtest_table(period: Period, hours: int, target: str, result: PeriodBacktest) -> pl.DataFrame:
    """The report's rows of one period and horizon: strategy (``zscore`` or the model whose predictions
    the prediction rule trades), coin (``all``: the coins' equal-capital mean), days and ``FIGURES``."""
    if not result.ranges.height:
        return pl.DataFrame()
    frame = result.ranges
    keep = [c for c in ("strategy", "coin", "days", *FIGURES) if c in frame.columns]
    return frame.select(keep).with_columns(
        period=pl.lit(period.name),
        target=pl.lit(target),
        hours=pl.lit(hours),
        kr_venue=pl.lit(period.kr_venue),
        skipped_days=pl.lit(len(result.skipped)),
    )
