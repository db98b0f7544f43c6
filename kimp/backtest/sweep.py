"""Parameter sweeps of the z-score strategy, in parallel across cores.

The kernels are ``nogil`` numba functions, so a thread pool runs them truly in parallel (no process
start-up, no pickling of the market); each grid point is an independent vectorized backtest.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import Market
from kimp.backtest.signals import zscore_signals
from kimp.backtest.vectorized import run_vectorized

SUMMARY = (
    "total_return",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "turnover",
    "exposure",
    "round_trips",
    "cost_total",
)


def sweep(
    market: Market,
    grid: Mapping[str, Sequence[float]],
    config: BacktestConfig | None = None,
    *,
    n_jobs: int | None = None,
) -> pl.DataFrame:
    """Run ``zscore_signals(**point)`` + ``run_vectorized`` for every point of the grid (keys: window,
    entry_z, exit_z, size). One row per point: its parameters and the SUMMARY metrics."""
    cfg = config or BacktestConfig()
    keys = list(grid)
    unknown = set(keys) - {"window", "entry_z", "exit_z", "size"}
    if unknown:
        raise ValueError(f"sweep grid keys must be window, entry_z, exit_z, size; got {sorted(unknown)}")
    points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]

    def one(point: dict[str, float]) -> dict[str, float]:
        kwargs = {k: (int(v) if k == "window" else float(v)) for k, v in point.items()}
        result = run_vectorized(market, zscore_signals(market, **kwargs), cfg)  # type: ignore[arg-type]
        return {**point, **{k: result.metrics[k] for k in SUMMARY}}

    workers = n_jobs or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(one, points))
    return pl.DataFrame(rows)
