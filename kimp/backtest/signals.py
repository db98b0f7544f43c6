"""Signals: a target spread position in [-1, 1] per bar, from a rule or from model predictions.

Convention: ``target > 0`` is long the premium (long the Korean leg, short the Binance leg), ``< 0``
short it; ``|target|`` is the fraction of the sizing capital (see :class:`BacktestConfig`). A signal
at bar ``ts`` may use only what is known at that bar's close, and the engines act on it there.

Prediction rule (documented in docs/backtesting.md): with ``edge = p_down - p_up`` for the bar,
the target is ``-clip(edge, -1, 1)`` when ``|edge| >= threshold`` and 0 otherwise; a premium expected to
fall (p_down high) means short the premium, sized by the confidence. A bar without a usable prediction
(no row, or NaN probabilities) is flat.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from numba import njit

from kimp.backtest.market import US, Market
from kimp.errors import MarketDataError


@njit(cache=True, nogil=True)
def zscore_targets(premium, window, entry_z, exit_z, size):
    """Rolling z-score of the premium over ``window`` bars and a mean-reversion state machine.

    Unknown premiums (NaN) repeat the last known value for the statistics and never trigger a change.
    Enter short (``-size``) above ``entry_z``, long below ``-entry_z``; leave when ``|z|`` falls back
    under ``exit_z``; flip directly on an opposite entry.
    """
    n = premium.shape[0]
    out = np.zeros(n)
    z_out = np.full(n, np.nan)
    buf = np.zeros(window)
    s1 = 0.0
    s2 = 0.0
    count = 0
    last = np.nan
    pos = 0.0
    for i in range(n):
        x = premium[i]
        fresh = x == x
        if fresh:
            last = x
        if last != last:
            out[i] = pos
            continue
        k = count % window
        if count >= window:
            s1 -= buf[k]
            s2 -= buf[k] * buf[k]
        buf[k] = last
        s1 += last
        s2 += last * last
        count += 1
        if count < window or not fresh:
            out[i] = pos
            continue
        mean = s1 / window
        var = (s2 - s1 * s1 / window) / (window - 1)
        if var <= 1e-18:
            out[i] = pos
            continue
        z = (last - mean) / math.sqrt(var)
        z_out[i] = z
        if pos == 0:
            if z > entry_z:
                pos = -size
            elif z < -entry_z:
                pos = size
        elif pos < 0:
            if z < -entry_z:
                pos = size
            elif z < exit_z:
                pos = 0.0
        else:
            if z > entry_z:
                pos = -size
            elif z > -exit_z:
                pos = 0.0
        out[i] = pos
    return out, z_out


def _frame(market: Market, target: np.ndarray, **extra: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"ts": market.ts_series(), "target": target, **extra})


def zscore_signals(
    market: Market, *, window: int = 240, entry_z: float = 2.0, exit_z: float = 0.5, size: float = 1.0
) -> pl.DataFrame:
    """The baseline rule: fade premium z-scores (rich premium -> short it). Columns ts, target, zscore."""
    if window < 2 or not 0 <= exit_z < entry_z or not 0 < size <= 1:
        raise ValueError(
            f"need window >= 2, 0 <= exit_z < entry_z, 0 < size <= 1; got {window}, {exit_z}, "
            f"{entry_z}, {size}"
        )
    target, z = zscore_targets(market.premium, window, entry_z, exit_z, size)
    return _frame(market, target, zscore=z)


def prediction_signals(
    market: Market,
    predictions: pl.DataFrame,
    *,
    model: str = "ensemble",
    threshold: float = 0.1,
    horizon: int | None = None,
) -> pl.DataFrame:
    """Targets from direction predictions (ts, coin, horizon, model, p_down, p_flat, p_up). Columns ts,
    target, edge. Predictions inside the market's time span must sit on its bars."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold is a probability difference in [0, 1], got {threshold}")
    need = {"ts", "coin", "model", "p_down", "p_up"}
    if missing := need - set(predictions.columns):
        raise MarketDataError(
            source="predictions",
            partition=market.partition,
            problem=f"columns {sorted(missing)} are missing",
            expected="ts, coin, horizon, model, p_down, p_flat, p_up",
        )
    rows = predictions.filter((pl.col("coin") == market.coin) & (pl.col("model") == model))
    if horizon is not None:
        rows = rows.filter(pl.col("horizon") == horizon)
    elif "horizon" in rows.columns and rows["horizon"].n_unique() > 1:
        raise MarketDataError(
            source="predictions",
            partition=market.partition,
            problem=f"model {model!r} has several horizons {sorted(rows['horizon'].unique().to_list())}",
            expected="pass horizon= to pick one",
        )
    t = rows.select(pl.col("ts").dt.cast_time_unit("us").cast(pl.Int64)).to_series().to_numpy()
    inside = (t >= market.ts[0]) & (t <= market.ts[-1])
    rows, t = rows.filter(pl.Series(inside)), t[inside]
    if rows.height == 0:
        raise MarketDataError(
            source="predictions",
            partition=market.partition,
            problem=f"no predictions of model {model!r} for {market.coin} inside the market's time span",
            expected="one row per bar, coin and model",
        )
    k = (t - market.ts[0]) // (market.interval_s * US)
    off_grid = (t - market.ts[0]) % (market.interval_s * US) != 0
    dup = np.zeros(t.size, dtype=np.bool_)
    if t.size > 1:
        order = np.argsort(t, kind="stable")
        dup[order[1:]] = np.diff(t[order]) == 0
    if off_grid.any() or dup.any():
        raise MarketDataError(
            source="predictions",
            partition=market.partition,
            problem=f"{int(off_grid.sum())} predictions are off the bar grid and {int(dup.sum())} are duplicated "
            "(misaligned with prices)",
            expected=f"one prediction per {market.interval_s}-second bar open time",
            rows=rows.filter(pl.Series(off_grid | dup)).select("ts", "coin", "model"),
        )
    edge = np.zeros(market.n)
    edge[k] = (
        rows["p_down"].cast(pl.Float64).fill_null(np.nan) - rows["p_up"].cast(pl.Float64).fill_null(np.nan)
    ).to_numpy()
    edge = np.nan_to_num(edge, nan=0.0)
    target = np.where(np.abs(edge) >= max(threshold, 1e-12), -np.clip(edge, -1.0, 1.0), 0.0)
    return _frame(market, target, edge=edge)


def _same_buffer(a: np.ndarray, b: np.ndarray) -> bool:
    """The same memory read the same way (signals built on the market's own ts column): equal."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
    )


def target_array(market: Market, signals: pl.DataFrame) -> np.ndarray:
    """The validated target column: same bars as the market, finite values."""
    if "ts" not in signals.columns or "target" not in signals.columns:
        raise MarketDataError(
            source="signals",
            partition=market.partition,
            problem=f"columns are {signals.columns}",
            expected="a frame with ts and target (as returned by zscore_signals / prediction_signals)",
        )
    ts_col = signals.get_column("ts")
    if isinstance(ts_col.dtype, pl.Datetime) and ts_col.dtype.time_unit == "us":
        ts = ts_col.to_physical().to_numpy()  # eager and zero-copy (the common case, on every run)
    else:
        ts = signals.select(pl.col("ts").dt.cast_time_unit("us").cast(pl.Int64)).to_series().to_numpy()
    if ts.shape[0] != market.n or not (_same_buffer(ts, market.ts) or np.array_equal(ts, market.ts)):
        bad = 0 if ts.shape[0] == 0 else int(np.argmax(ts[: market.n] != market.ts[: ts.shape[0]]))
        raise MarketDataError(
            source="signals",
            partition=market.partition,
            problem=f"signals are misaligned with prices: {ts.shape[0]} signal rows vs {market.n} bars, "
            f"first difference at row {bad}",
            expected="exactly one signal per market bar, same ts in the same order",
            rows=signals.slice(bad, 5),
        )
    target_col = signals.get_column("target").cast(pl.Float64)
    target = (target_col.fill_null(np.nan) if target_col.null_count() else target_col).to_numpy()
    if not np.isfinite(target.sum()) and not np.all(np.isfinite(target)):  # a finite sum: all finite
        bad_rows = signals.filter(~pl.Series(np.isfinite(target)))
        raise MarketDataError(
            source="signals",
            partition=market.partition,
            problem=f"{bad_rows.height} targets are NaN or null",
            expected="a finite target on every bar (0 = flat)",
            rows=bad_rows,
        )
    return np.ascontiguousarray(target)
