"""Range summaries of stored daily results, shared by the report assets and the CLI."""

from __future__ import annotations

import numpy as np
import polars as pl

# One range row per chain of days: the market and the run.
RANGE_KEY = ("strategy", "coin", "kr_venue", "engine", "scenario")


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


def range_rows(daily: pl.DataFrame) -> pl.DataFrame:
    """One row per (strategy, coin, kr_venue, engine, scenario) over the days of ``daily`` (backtest_report
    rows with their ``equity`` and ``position`` curves): the metrics of the concatenated equity curve of
    the range, as one run over it (total and annualised return, Sharpe, Sortino, max drawdown spanning
    days, Calmar, turnover and costs summed, round trips across midnight counted once). ``date`` is null.

    Days that continued each other (positions carried) concatenate as they are, so a range run day by day
    gives the continuous run's figures bit for bit. A day that started a new chain (flat, from the
    capital) is rebased onto the previous day's last mark, so its returns count and no jump appears.
    """
    from kimp.backtest.metrics import compute_metrics

    if not daily.height:
        return daily.head(0)
    cost_columns = [c for c in daily.columns if c.startswith("cost_")]
    rows = []
    for key, part in daily.sort("date").group_by(list(RANGE_KEY), maintain_order=True):
        curves, positions = [], []
        last = None
        for row in part.iter_rows(named=True):
            equity = np.asarray(row["equity"], dtype=np.float64)
            if last is not None and row["opening_equity"] != last:
                equity = equity * (last / row["opening_equity"])
            curves.append(equity)
            positions.append(np.asarray(row["position"], dtype=np.float64))
            last = float(equity[-1])
        first = part.row(0, named=True)
        metrics = compute_metrics(
            np.concatenate(curves),
            periods_per_year=365.0 * 86_400 / int(first["interval_s"]),
            capital=float(first["opening_equity"]),
            position=np.concatenate(positions),
            traded_notional=float(part["traded_notional"].sum()),
            costs={c.removeprefix("cost_"): float(part[c].sum()) for c in cost_columns},
        )
        rows.append(
            {
                **dict(zip(RANGE_KEY, key, strict=True)),
                **{c: metrics.get(c, float("nan")) for c in daily.columns if c in metrics},
                "trades": int(part["trades"].sum()),
                "rejections": int(part["rejections"].sum()),
                "opening_equity": float(first["opening_equity"]),
                "final_equity": float(metrics["final_equity"]),
                "traded_notional": float(part["traded_notional"].sum()),
                "interval_s": int(first["interval_s"]),
                "continued": bool(part["continued"].slice(1).all()),
                "days": part.height,
            }
        )
    out = pl.DataFrame(rows, infer_schema_length=None)
    return out


def summary_rows(daily: pl.DataFrame) -> pl.DataFrame:
    """``backtest_summary``: the day rows (``scope`` = ``day``, the report's figures) and, when the days
    carry their curves, one ``range`` row per (strategy, coin, kr_venue, engine, scenario) (:func:`range_rows`,
    ``date`` null). ``days``: the days a row covers; ``continued`` on a range row: every day continued the
    one before (one unbroken chain)."""
    from kimp.backtest.daily import CHAIN_COLUMNS

    figures = daily.drop([c for c in CHAIN_COLUMNS if c in daily.columns])
    day = figures.with_columns(scope=pl.lit("day"), days=pl.lit(1, dtype=pl.Int64))
    if not all(c in daily.columns for c in ("equity", "position", "opening_equity", "continued")):
        return day
    ranged = range_rows(daily)
    ranged = ranged.with_columns(
        scope=pl.lit("range"), date=pl.lit(None, dtype=pl.Date), days=pl.col("days").cast(pl.Int64)
    )
    ranged = ranged.select(
        [
            pl.col(c).cast(day.schema[c])
            if c in ranged.columns
            else pl.lit(None, dtype=day.schema[c]).alias(c)
            for c in day.columns
        ]
    )
    return pl.concat([day, ranged], how="vertical")


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
