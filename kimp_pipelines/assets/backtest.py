"""Daily backtest reports, per market scenario: the spread trade under each strategy and both engines.

For day D and scenario S: the day's market (premium, candles for volumes, L10 books) is transformed by
S, each strategy's signals are computed from that market (z-score) or read from the out-of-sample
``predictions`` of D, and both engines run: vectorized (bar fills) and event-driven (orders with latency
against the L10 book when the market has books). Each day starts flat and ends flat (independent days).
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, MetadataValue, Output, asset

from kimp.timeutil import parse_day
from kimp_pipelines.assets.metadata import frame_table, list_table, png_markdown, table_metadata
from kimp_pipelines.partitions import Partitions
from kimp_pipelines.resources.backtest import BacktestResource
from kimp_pipelines.resources.io_manager import ALLOW_MISSING
from kimp_pipelines.resources.store import StoreResource

METRIC_COLUMNS = (
    "total_return",
    "annualized_return",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "turnover",
    "exposure",
    "round_trips",
    "pnl",
)


# A z-score over n samples cannot exceed (n - 1) / sqrt(n): fewer than ~24 bars could never reach the
# entry threshold on hourly data, so the window is at least this many bars.
MIN_ZSCORE_BARS = 24


def _signals(
    market: Any, strategy: str, predictions: pl.DataFrame, res: BacktestResource, history: np.ndarray
) -> pl.DataFrame | None:
    """Targets in [-1, 1] per bar of the day. The z-score warms up on the previous day's premium
    (``history``, known before the day starts), so the first bars of a day trade like the rest."""
    from kimp.backtest import prediction_signals
    from kimp.backtest.signals import zscore_targets

    if strategy == "zscore":
        bars = max(MIN_ZSCORE_BARS, -(-res.zscore_window_minutes * 60 // market.interval_s))
        series = np.concatenate([history, market.premium]).astype(np.float64)
        target, z = zscore_targets(series, bars, res.entry_z, res.exit_z, 1.0)
        n = market.n
        return pl.DataFrame({"ts": market.ts_series(), "target": target[-n:], "zscore": z[-n:]})
    if not predictions.width or predictions.filter(pl.col("model") == strategy).height == 0:
        return None
    return prediction_signals(
        market,
        predictions,
        model=strategy,
        threshold=res.prediction_threshold,
        exit_threshold=res.prediction_exit_threshold,
        hold_minutes=res.prediction_hold_minutes,
        size_step=res.prediction_size_step,
    )


def _history(premium: pl.DataFrame, coin: str, venue: str, column: str) -> np.ndarray:
    if not premium.height:
        return np.empty(0)
    rows = premium.filter((pl.col("coin") == coin) & (pl.col("kr_venue") == venue)).sort("ts")
    return rows[column].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _row(result: Any, day: Any, strategy: str) -> dict[str, Any]:
    m = result.metrics
    return {
        "date": day,
        "scenario": result.scenario,
        "strategy": strategy,
        "coin": result.coin,
        "kr_venue": result.kr_venue,
        "engine": result.engine,
        **{k: float(m.get(k, float("nan"))) for k in METRIC_COLUMNS},
        **{f"cost_{k}": float(v) for k, v in result.costs.items()},
        "trades": result.trades.height,
        "rejections": len(result.rejections),
    }


def build_backtest_asset(partitions: Partitions) -> AssetsDefinition:
    """``backtest_report`` over (day, scenario) partitions."""

    @asset(
        partitions_def=partitions.daily_scenario,
        group_name="backtest",
        kinds={"numba", "parquet"},
        ins={
            "predictions": AssetIn(metadata={ALLOW_MISSING: True}),
        },
    )
    def backtest_report(
        context: AssetExecutionContext,
        backtest: BacktestResource,
        store: StoreResource,
        kimchi_premium: pl.DataFrame,
        upbit_candles: pl.DataFrame,
        bithumb_candles: pl.DataFrame,
        binance_candles: pl.DataFrame,
        orderbook_snapshots: pl.DataFrame,
        predictions: pl.DataFrame,
    ) -> Iterator[Output[pl.DataFrame]]:
        """Backtest of day D under one market scenario: one row per strategy, coin, Korean venue and engine
        with returns, risk ratios, drawdown, trade statistics and costs by kind; a small-multiples plot (one
        panel per strategy, coin and venue) and an HTML report."""
        from kimp.backtest import (
            BacktestConfig,
            apply_scenario,
            html_report,
            market_from_tables,
            run_event_driven,
            run_vectorized,
        )
        from kimp.backtest.report import small_multiples_png, span_text

        keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
        day, scenario = parse_day(keys["date"]), keys["scenario"]
        # The day before D warms the z-score up (read from the store: Dagster's time-window mappings do not
        # reach into a (date, scenario) partition); a first day without it simply warms up within the day.
        prev = (day - timedelta(days=1)).isoformat()
        history_premium = (
            store.store().read("kimchi_premium", prev)
            if store.store().exists("kimchi_premium", prev)
            else pl.DataFrame()
        )
        candles = pl.concat(
            [f for f in (upbit_candles, bithumb_candles, binance_candles) if f.width], how="vertical_relaxed"
        )
        rows, results, skipped = [], [], []
        coins = [c.strip() for c in backtest.coins.split(",") if c.strip()]
        venues = [v.strip() for v in backtest.kr_venues.split(",") if v.strip()]
        # A (coin, venue) market is traded only where the day has premiums to trade on: e.g. the shared real
        # samples also hold Upbit DAILY candles, whose premium has no Binance daily counterpart (all null).
        tradable = (
            kimchi_premium.filter(pl.col("premium_fx").is_not_null()) if kimchi_premium.height else None
        )
        present = (
            {f"{c}/{v}" for c, v in tradable.select("coin", "kr_venue").unique().iter_rows()}
            if tradable is not None
            else set()
        )
        for coin in coins:
            for venue in venues:
                if f"{coin}/{venue}" not in present:
                    skipped.append(f"{coin} on {venue}: no premium to trade on this day")
                    continue
                bar_cfg = BacktestConfig(fill="bar")
                market = market_from_tables(
                    kimchi_premium, candles, orderbook_snapshots, coin=coin, kr_venue=venue, config=bar_cfg
                )
                market = apply_scenario(market, scenario, seed=backtest.seed)
                book_cfg = (
                    BacktestConfig(fill="book")
                    if market.kr_book is not None and market.bn_book is not None
                    else bar_cfg
                )
                history = _history(history_premium, coin, venue, bar_cfg.premium_column)
                for strategy in backtest.strategy_list():
                    signals = _signals(market, strategy, predictions, backtest, history)
                    if signals is None:
                        skipped.append(
                            f"{strategy} for {coin}/{venue}: no predictions of that model for {day}"
                        )
                        continue
                    for result in (
                        run_vectorized(market, signals, bar_cfg),
                        run_event_driven(market, signals, book_cfg),
                    ):
                        rows.append(_row(result, day, strategy))
                        results.append(result)
        for line in skipped:
            context.log.info(f"backtest {day} {scenario}: skipped {line}")
        if not rows:
            raise ValueError(f"backtest_report {day} {scenario}: nothing to backtest ({'; '.join(skipped)})")
        frame = pl.DataFrame(rows).with_columns(pl.col("date").cast(pl.Date))
        strategies = frame["strategy"].to_list()  # one per result, in order
        page = html_report(
            results,
            title=f"kimp backtest {day} ({scenario})",
            strategies=strategies,
            index_href="../../index.html",  # the range index page backtest_summary writes
        )
        html_path = backtest.write_report(day.isoformat(), scenario, page)
        span = span_text(results[0])
        # What a row is (strategy, coin, venue, engine) and the run's own figures; a single day's
        # annualised Sharpe says how far it was extrapolated.
        show = frame.select(
            "strategy",
            "coin",
            "kr_venue",
            "engine",
            "scenario",
            "total_return",
            "max_drawdown",
            pl.col("sharpe").alias(f"sharpe (annualised from {span})"),
            "trades",
            "cost_total",
        )
        context.log.info(f"backtest {day} {scenario}: {frame.height} results, report {html_path}")
        yield Output(
            frame,
            metadata={
                **table_metadata(frame, preview_rows=0),
                "results": frame_table(show),
                "returns": png_markdown(
                    small_multiples_png(results, strategies), "return per strategy, coin and venue"
                ),
                "html_report": MetadataValue.path(str(html_path)),
                "skipped": list_table(skipped, column="skipped"),
            },
        )

    return backtest_report
