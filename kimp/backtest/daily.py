"""One day's backtest under one market scenario: what the ``backtest_report`` asset computes.

:func:`backtest_day` builds each (coin, Korean venue) market of the day from the stored tables, applies
the scenario, asks every configured strategy (:mod:`kimp.backtest.strategies`) for its targets and runs
both engines: vectorized (bar fills) and event-driven (orders with latency against the L10 book when the
market has books). One row per strategy, coin, venue and engine: the day's metrics and costs, and what the
next day needs to continue (positions carry across days):

- ``carry`` (bytes): the engine's :class:`~kimp.backtest.carry.ClosingState`, the strategy's own state
  (its rule's window and position) and the day's bars (the next day's warm-up history), one ``.npz``;
- ``equity`` and ``position`` (per bar): the day's marks, from which range metrics are computed over the
  concatenated curve of a chain of days (:func:`kimp.reporting.summaries.range_rows`).

With ``carry=True`` (the default) a day continues from the previous day's stored rows: the engines start
from their closing state and the strategies from theirs, so a range run day by day equals one run over
the range, trades and equity bit for bit (tests/test_backtest_daily.py). With ``carry=False`` each day
starts flat and is closed out at its last bar (independent days); the strategies' states still carry
(their warm-up is the bars before the day). A day without a stored previous day starts a chain: flat,
each rule warming up on the day's own first bars.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from kimp.backtest.carry import ClosingState
from kimp.backtest.config import BacktestConfig, CostConfig
from kimp.backtest.event_driven import run_event_driven
from kimp.backtest.market import US, Market, market_from_tables
from kimp.backtest.result import BacktestResult
from kimp.backtest.scenarios import apply_scenario
from kimp.backtest.strategies import StrategyDay, strategies
from kimp.backtest.vectorized import run_vectorized

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
# Columns that carry the chain (not metrics): the summaries and the UI tables leave them out.
CHAIN_COLUMNS = ("equity", "position", "carry")
ROW_KEY = ("strategy", "coin", "kr_venue", "engine")


@dataclass(frozen=True)
class DayConfig:
    """What a day's backtest runs: strategies, markets, their parameters, the scenario seed, and whether
    positions carry across days (``carry``) or every day ends flat."""

    strategies: tuple[str, ...] = ("zscore", "ensemble")
    coins: tuple[str, ...] = ("BTC", "ETH")
    kr_venues: tuple[str, ...] = ("upbit", "bithumb")
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    seed: int = 7
    carry: bool = True
    # The engines run (rows per engine). Without order books both give the same figures, so a caller
    # that has none (the research backtest) may run the vectorized one alone.
    engines: tuple[str, ...] = ("vectorized", "event_driven")
    costs: CostConfig = field(default_factory=CostConfig)  # the engines' cost models (fees by venue...)

    def __post_init__(self) -> None:
        if not self.engines or not set(self.engines) <= {"vectorized", "event_driven"}:
            raise ValueError(f"engines must name vectorized and/or event_driven, got {self.engines!r}")

    def bar_config(self) -> BacktestConfig:
        return BacktestConfig(fill="bar", flat_at_day_end=not self.carry, costs=self.costs)

    def book_config(self) -> BacktestConfig:
        return BacktestConfig(fill="book", flat_at_day_end=not self.carry, costs=self.costs)


@dataclass
class DayBacktest:
    """The day's rows (one per strategy, coin, venue and engine), the runs behind them (same order), the
    strategy of each run, and what was skipped or noted."""

    frame: pl.DataFrame
    results: list[BacktestResult]
    strategies: list[str]
    skipped: list[str]
    notes: list[str]


# --- the carried state of one row ----------------------------------------------------------------------

_TAIL = ("ts", "premium", "kr_close", "bn_close", "conv", "kr_volume", "bn_volume", "tradable")


def pack_carry(closing: ClosingState, strategy_state: np.ndarray | None, market: Market) -> bytes:
    """One row's ``carry``: the closing state, the strategy's state and the day's bars (.npz, no pickle)."""
    buf = io.BytesIO()
    np.savez(
        buf,
        closing=np.frombuffer(closing.to_bytes(), dtype=np.uint8),
        has_state=np.array([strategy_state is not None]),
        strategy_state=np.zeros(0) if strategy_state is None else strategy_state,
        interval_s=np.array([market.interval_s], dtype=np.int64),
        **{f"bar_{name}": getattr(market, name) for name in _TAIL},
    )
    return buf.getvalue()


@dataclass(frozen=True, eq=False)
class Carried:
    closing: ClosingState
    strategy_state: np.ndarray | None
    bars: dict[str, np.ndarray]
    interval_s: int

    def history(self, market: Market) -> Market | None:
        """The carried day's bars as a market before ``market`` (same coin, venue and interval)."""
        if self.interval_s != market.interval_s or not self.bars["ts"].size:
            return None
        bars = self.bars
        step = self.interval_s * US
        return market.replace(
            **bars, fx_ts=bars["ts"] + step, fx_rate=bars["conv"], kr_book=None, bn_book=None
        )


def unpack_carry(data: bytes) -> Carried:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return Carried(
            closing=ClosingState.from_bytes(z["closing"].tobytes()),
            strategy_state=z["strategy_state"].copy() if bool(z["has_state"][0]) else None,
            bars={name: z[f"bar_{name}"].copy() for name in _TAIL},
            interval_s=int(z["interval_s"][0]),
        )


def _previous(previous: pl.DataFrame) -> dict[tuple[str, ...], Carried]:
    if not previous.height or "carry" not in previous.columns:
        return {}
    return {
        tuple(row[k] for k in ROW_KEY): unpack_carry(row["carry"])
        for row in previous.select(*ROW_KEY, "carry").iter_rows(named=True)
        if row["carry"] is not None
    }


def _row(result: BacktestResult, day: date, strategy: str, continued: bool, carry: bytes) -> dict[str, Any]:
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
        "opening_equity": float(m["opening_equity"]),
        "final_equity": float(m["final_equity"]),
        "traded_notional": float(m["traded_notional"]),
        "interval_s": result.records.market.interval_s,
        "continued": continued,
        "equity": np.asarray(result.records.equity, dtype=np.float64),
        "position": result.equity["position"].to_numpy(),
        "carry": carry,
    }


def backtest_day(
    day: date,
    scenario: str,
    *,
    premium: pl.DataFrame,
    candles: pl.DataFrame,
    orderbook: pl.DataFrame,
    config: DayConfig,
    predictions: pl.DataFrame | None = None,
    agents: Mapping[str, Mapping[str, Any]] | None = None,
    previous: pl.DataFrame | None = None,
) -> DayBacktest:
    """Backtest ``day`` under ``scenario`` (module docstring). ``premium``/``candles``/``orderbook``:
    the day's tables; ``predictions``: the day's predictions; ``agents``: the day's agent cards by kind;
    ``previous``: the previous day's rows of the same scenario (empty or None: a chain starts here).
    Raises ValueError when there is nothing to backtest."""
    specs = strategies(config.strategies)
    predictions = predictions if predictions is not None else pl.DataFrame()
    carried = _previous(previous if previous is not None else pl.DataFrame())
    rows: list[dict[str, Any]] = []
    results: list[BacktestResult] = []
    names: list[str] = []
    skipped: list[str] = []
    notes: list[str] = []
    bar_cfg, book_cfg_full = config.bar_config(), config.book_config()
    # A (coin, venue) market is traded only where the day has premiums to trade on: e.g. the shared real
    # samples also hold Upbit DAILY candles, whose premium has no Binance daily counterpart (all null).
    present: set[tuple[str, str]] = set()
    if premium.height:
        tradable = premium.filter(pl.col(bar_cfg.premium_column).is_not_null())
        present = {(c, v) for c, v in tradable.select("coin", "kr_venue").unique().iter_rows()}
    for coin in config.coins:
        for venue in config.kr_venues:
            if (coin, venue) not in present:
                skipped.append(f"{coin} on {venue}: no premium to trade on this day")
                continue
            market = market_from_tables(
                premium, candles, orderbook, coin=coin, kr_venue=venue, config=bar_cfg
            )
            market = apply_scenario(market, scenario, seed=config.seed)
            book_cfg = book_cfg_full if market.kr_book is not None and market.bn_book is not None else bar_cfg
            any_prev = next(
                (c for k, c in carried.items() if k[1] == coin and k[2] == venue), None
            )  # the day before's bars are the same in every row of this market
            history = any_prev.history(market) if any_prev is not None else None
            if history is not None and history.ts[-1] >= market.ts[0]:
                history = None
            inputs = StrategyDay(
                day=day, market=market, history=history, predictions=predictions, agents=agents or {}
            )
            for spec in specs:
                key_vec = (spec.name, coin, venue, "vectorized")
                prev_vec = carried.get(key_vec)
                state = prev_vec.strategy_state if prev_vec is not None else None
                out = spec.run(inputs, spec.make_params(config.params.get(spec.name)), state)
                notes.extend(out.notes)
                if out.signals is None:
                    skipped.append(f"{spec.name} for {coin}/{venue}: {'; '.join(out.notes) or 'no signals'}")
                    continue
                for engine, run, cfg in (
                    ("vectorized", run_vectorized, bar_cfg),
                    ("event_driven", run_event_driven, book_cfg),
                ):
                    if engine not in config.engines:
                        continue
                    prev = carried.get((spec.name, coin, venue, engine))
                    start = prev.closing if (prev is not None and config.carry) else None
                    result, continued = _run(run, market, out.signals, cfg, start, notes, spec.name)
                    rows.append(
                        _row(result, day, spec.name, continued, pack_carry(result.closing, out.state, market))
                    )
                    results.append(result)
                    names.append(spec.name)
    if not rows:
        raise ValueError(f"backtest {day} {scenario}: nothing to backtest ({'; '.join(skipped)})")
    frame = pl.DataFrame(rows).with_columns(pl.col("date").cast(pl.Date))
    return DayBacktest(frame=frame, results=results, strategies=names, skipped=skipped, notes=notes)


def _run(
    run: Any,
    market: Market,
    signals: pl.DataFrame,
    cfg: BacktestConfig,
    start: ClosingState | None,
    notes: list[str],
    strategy: str,
) -> tuple[BacktestResult, bool]:
    """The run, continued from ``start`` when it belongs to this run; a state made with other settings
    (fees, limits, the day-end rule...) starts a new chain, said in ``notes``."""
    if start is not None:
        try:
            return run(market, signals, cfg, start=start), True
        except ValueError as exc:
            notes.append(f"{strategy} {market.coin}/{market.kr_venue}: started flat: {exc}")
    return run(market, signals, cfg), False


def chain_columns_dropped(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` without the chain's columns (what tables and summaries show)."""
    return frame.drop([c for c in CHAIN_COLUMNS if c in frame.columns])


__all__ = ["CHAIN_COLUMNS", "METRIC_COLUMNS", "DayBacktest", "DayConfig", "backtest_day", "unpack_carry"]
