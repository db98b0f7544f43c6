"""Range summaries of stored daily results, shared by the report assets and the CLI."""

from __future__ import annotations

import polars as pl


def day_returns(daily: pl.DataFrame) -> pl.DataFrame:
    """One row per day, scenario and strategy: the day's return (``day_return``), the mean over its coins,
    Korean venues and engines (equal capital in each market)."""
    return (
        daily.group_by("date", "scenario", "strategy")
        .agg(day_return=pl.col("total_return").mean())
        .sort("date", "scenario", "strategy")
    )


def backtest_overview(daily: pl.DataFrame) -> pl.DataFrame:
    """One row per strategy, scenario and engine over the days of ``daily`` (backtest_report rows).

    A day's return is the mean over its coins and venues (equal capital in each); days compound. Figures
    are per day (mean, spread and worst day, and their ratio ``daily_sharpe``, not annualised): a single
    day's annualised Sharpe or return says little, and averaging them says less.
    """
    per_day = daily.group_by("strategy", "scenario", "engine", "date").agg(
        pl.col("total_return").mean(),
        pl.col("max_drawdown").max(),
        pl.col("trades").sum(),
        pl.col("cost_total").sum(),
    )
    return (
        per_day.group_by("strategy", "scenario", "engine")
        .agg(
            days=pl.len(),
            compounded_return=(pl.col("total_return") + 1).product() - 1,
            mean_daily_return=pl.col("total_return").mean(),
            sd_daily_return=pl.col("total_return").std(),
            worst_day_return=pl.col("total_return").min(),
            worst_drawdown=pl.col("max_drawdown").max(),
            trades=pl.col("trades").sum(),
            costs_krw=pl.col("cost_total").sum(),
        )
        .with_columns(daily_sharpe=pl.col("mean_daily_return") / pl.col("sd_daily_return"))
        .sort("strategy", "scenario", "engine")
    )


def walk_forward_overview(daily: pl.DataFrame) -> pl.DataFrame:
    """One row per model over the days of ``daily`` (model_evaluation rows): mean daily metrics and the
    number of scored rows; best macro-F1 first, so a model is read beside the baselines."""
    numeric = [c for c in ("accuracy", "macro_f1", "log_loss", "ece") if c in daily.columns]
    return (
        daily.group_by("model")
        .agg(
            days=pl.col("day").n_unique(),
            rows=pl.col("n").sum(),
            **{f"mean_{c}": pl.col(c).mean() for c in numeric},
        )
        .sort("mean_macro_f1", descending=True, nulls_last=True)
    )
