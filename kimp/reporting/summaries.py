"""Range summaries of stored daily results, shared by the report assets and the CLI."""

from __future__ import annotations

import polars as pl


def backtest_overview(daily: pl.DataFrame) -> pl.DataFrame:
    """One row per strategy, scenario and engine over the days of ``daily`` (backtest_report rows).

    A day's return is the mean over its coins and venues (equal capital in each); days compound.
    """
    per_day = daily.group_by("strategy", "scenario", "engine", "date").agg(
        pl.col("total_return").mean(),
        pl.col("sharpe").fill_nan(None).mean(),
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
            mean_sharpe=pl.col("sharpe").mean(),
            worst_drawdown=pl.col("max_drawdown").max(),
            trades=pl.col("trades").sum(),
            costs_krw=pl.col("cost_total").sum(),
        )
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
