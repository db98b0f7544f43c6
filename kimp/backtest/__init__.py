"""Backtesting of the kimchi-premium spread trade (and single-venue directional trades).

Two engines over one accounting kernel (:mod:`kimp.backtest.kernel`): :func:`run_vectorized` (a numba
pass over bars, for sweeps) and :func:`run_event_driven` (events in time order, orders with latency
filled against the L10 book). A run ends in a :class:`ClosingState` that the next run over the bars
that follow continues from (``start=``), so days run one by one equal one run over them. See docs/backtesting.md for the trade, the cost models and their
assumptions, the scenarios and the metrics.
"""

from kimp.backtest.carry import ClosingState
from kimp.backtest.config import (
    BacktestConfig,
    CostConfig,
    FundingModel,
    FxConversionModel,
    ImpactModel,
    SlippageModel,
    TransferModel,
    VenueFees,
)
from kimp.backtest.event_driven import run_event_driven
from kimp.backtest.market import Book, Market, market_from_arrays, market_from_tables
from kimp.backtest.metrics import compute_metrics
from kimp.backtest.report import equity_png, html_report, premium_trades_png
from kimp.backtest.result import BacktestResult
from kimp.backtest.scenarios import SCENARIOS, apply_scenario
from kimp.backtest.signals import prediction_signals, prediction_state, zscore_signals, zscore_state
from kimp.backtest.sweep import sweep
from kimp.backtest.vectorized import run_vectorized

__all__ = [
    "SCENARIOS",
    "BacktestConfig",
    "BacktestResult",
    "Book",
    "ClosingState",
    "CostConfig",
    "FundingModel",
    "FxConversionModel",
    "ImpactModel",
    "Market",
    "SlippageModel",
    "TransferModel",
    "VenueFees",
    "apply_scenario",
    "compute_metrics",
    "equity_png",
    "html_report",
    "market_from_arrays",
    "market_from_tables",
    "prediction_signals",
    "prediction_state",
    "premium_trades_png",
    "run_event_driven",
    "run_vectorized",
    "sweep",
    "zscore_signals",
    "zscore_state",
]
