"""Signals: a target spread position in [-1, 1] per bar, from a rule or from model predictions.

Convention: ``target > 0`` is long the premium (long the Korean leg, short the Binance leg), ``< 0``
short it; ``|target|`` is the fraction of the sizing capital (see :class:`BacktestConfig`). A signal
at bar ``ts`` may use only what is known at that bar's close, and the engines act on it there.

Prediction rule (documented in docs/backtesting.md): with ``edge = p_down - p_up`` for the bar, a
premium expected to fall (p_down high) means short the premium, sized by the confidence ``|edge|``
(rounded to ``size_step``). :func:`prediction_targets` adds what keeps a per-bar forecast from churning
the book: enter at ``|edge| >= threshold``, leave only below ``exit_threshold`` (hysteresis), and hold a
position at least ``hold`` bars (the forecast's horizon by default) before leaving, flipping or resizing.
A bar without a usable prediction (no row, or NaN probabilities) has edge 0.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from numba import njit

from kimp.backtest.market import US, Market
from kimp.errors import MarketDataError

# The z-score rule's state vector: running sums, count of values seen, last known premium, position,
# then the window's ring buffer.
Z_S1, Z_S2, Z_COUNT, Z_LAST, Z_POS = range(5)
Z_HEAD = 5


def zscore_state(window: int) -> np.ndarray:
    """A fresh state of the z-score rule over ``window`` bars (nothing seen, flat)."""
    state = np.zeros(Z_HEAD + window)
    state[Z_LAST] = np.nan
    return state


def zscore_targets(
    premium: np.ndarray,
    window: int,
    entry_z: float,
    exit_z: float,
    size: float,
    state: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Targets and z-scores of the rule (:func:`zscore_step`) over ``premium``. ``state``
    (:func:`zscore_state`) is where the rule stands before the first value and is updated in place:
    pass the same vector with the next bars to continue as one run over both."""
    if state is None:
        state = zscore_state(window)
    elif state.shape != (Z_HEAD + window,):
        raise ValueError(
            f"a z-score state over {state.shape[0] - Z_HEAD} bars cannot run a {window}-bar window"
        )
    return zscore_step(premium, entry_z, exit_z, size, state)


@njit(cache=True, nogil=True)
def zscore_step(premium, entry_z, exit_z, size, state):
    """Rolling z-score of the premium over the window and a mean-reversion state machine.

    Unknown premiums (NaN) repeat the last known value for the statistics and never trigger a change.
    Enter short (``-size``) above ``entry_z``, long below ``-entry_z``; leave when ``|z|`` falls back
    under ``exit_z``; flip directly on an opposite entry. The sums run on from ``state`` (the window is
    its ring buffer) and are written back, so consecutive calls give a single call's bits.
    """
    n = premium.shape[0]
    window = state.shape[0] - Z_HEAD
    out = np.zeros(n)
    z_out = np.full(n, np.nan)
    buf = state[Z_HEAD:]
    s1 = state[Z_S1]
    s2 = state[Z_S2]
    count = np.int64(state[Z_COUNT])
    last = state[Z_LAST]
    pos = state[Z_POS]
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
    state[Z_S1] = s1
    state[Z_S2] = s2
    state[Z_COUNT] = count
    state[Z_LAST] = last
    state[Z_POS] = pos
    return out, z_out


def _frame(market: Market, target: np.ndarray, **extra: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"ts": market.ts_series(), "target": target, **extra})


def zscore_signals(
    market: Market,
    *,
    window: int = 240,
    entry_z: float = 2.0,
    exit_z: float = 0.5,
    size: float = 1.0,
    state: np.ndarray | None = None,
) -> pl.DataFrame:
    """The baseline rule: fade premium z-scores (rich premium -> short it). Columns ts, target, zscore.

    ``state`` (:func:`zscore_state`): the rule's window, sums and position before the market's first
    bar, updated in place; the same vector passed with the next day's market continues the rule as
    one run over both days (warm-up included)."""
    if window < 2 or not 0 <= exit_z < entry_z or not 0 < size <= 1:
        raise ValueError(
            f"need window >= 2, 0 <= exit_z < entry_z, 0 < size <= 1; got {window}, {exit_z}, "
            f"{entry_z}, {size}"
        )
    target, z = zscore_targets(market.premium, window, entry_z, exit_z, size, state)
    return _frame(market, target, zscore=z)


# The prediction rule's state vector: position, bars held.
PRED_POS, PRED_HELD = 0, 1


def prediction_state() -> np.ndarray:
    """A fresh state of the prediction rule (flat)."""
    return np.zeros(2)


def prediction_targets(
    edge: np.ndarray, entry: float, exit_: float, hold: int, step: float, state: np.ndarray | None = None
) -> np.ndarray:
    """Targets from per-bar edges (:func:`prediction_step`); ``state`` (:func:`prediction_state`) is
    updated in place: pass it with the next bars to continue as one run."""
    return prediction_step(edge, entry, exit_, hold, step, prediction_state() if state is None else state)


@njit(cache=True, nogil=True)
def prediction_step(edge, entry, exit_, hold, step, state):
    """Targets from per-bar edges (``p_down - p_up``) by the prediction rule (module docstring).

    Flat: enter at ``|edge| >= entry`` with ``-sign(edge) x size``. Held for ``hold`` bars or more: flip
    on an opposite ``|edge| >= entry``, leave when the edge is opposite or below ``exit_``, otherwise
    take the new size. ``size`` is ``min(|edge|, 1)`` rounded to a multiple of ``step`` (at least one
    step; ``step`` 0: unrounded), so that small changes of confidence do not trade. Starts from and
    writes back ``state`` (position, bars held).
    """
    n = edge.shape[0]
    out = np.zeros(n)
    pos = state[PRED_POS]
    held = np.int64(state[PRED_HELD])
    for i in range(n):
        e = edge[i]
        strength = min(abs(e), 1.0)
        size = strength
        if step > 0:
            size = min(1.0, max(step, round(strength / step) * step))
        want = -1.0 if e > 0 else 1.0
        if pos == 0.0:
            if strength >= entry and e != 0.0:
                pos = want * size
                held = 0
        else:
            held += 1
            if held >= hold:
                if want * pos < 0 and strength >= entry:
                    pos = want * size
                    held = 0
                elif want * pos < 0 or strength < exit_ or e == 0.0:
                    pos = 0.0
                else:
                    pos = want * size
        out[i] = pos
    state[PRED_POS] = pos
    state[PRED_HELD] = held
    return out


def prediction_signals(
    market: Market,
    predictions: pl.DataFrame,
    *,
    model: str = "ensemble",
    threshold: float = 0.1,
    exit_threshold: float | None = None,
    hold_minutes: int | None = None,
    size_step: float = 0.25,
    horizon: int | None = None,
    state: np.ndarray | None = None,
) -> pl.DataFrame:
    """Targets from direction predictions (ts, coin, horizon, model, p_down, p_flat, p_up). Columns ts,
    target, edge. Predictions inside the market's time span must sit on its bars. ``state``
    (:func:`prediction_state`): the rule's position and holding before the first bar, updated in place
    (pass it with the next day's market to continue as one run).

    ``threshold`` / ``exit_threshold`` (default half the entry): the edge to enter and the edge below
    which to leave. ``hold_minutes`` (default the predictions' horizon, minutes): the shortest holding
    before leaving, flipping or resizing. ``size_step``: sizes are multiples of it (0: unrounded). With
    ``exit_threshold=threshold, hold_minutes=0, size_step=0`` every bar trades its own edge."""
    exit_threshold = threshold / 2 if exit_threshold is None else exit_threshold
    if not 0 <= exit_threshold <= threshold <= 1:
        raise ValueError(
            "need 0 <= exit_threshold <= threshold <= 1 (probability differences), got "
            f"{exit_threshold}, {threshold}"
        )
    if not 0 <= size_step <= 1 or (hold_minutes is not None and hold_minutes < 0):
        raise ValueError(f"need size_step in [0, 1] and hold_minutes >= 0, got {size_step}, {hold_minutes}")
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
    if hold_minutes is None:  # a forecast of the next h minutes is a trade of about h minutes
        hold_minutes = int(rows["horizon"].max()) if "horizon" in rows.columns else 0
    hold = -(-hold_minutes * 60 // market.interval_s)
    target = prediction_targets(edge, max(threshold, 1e-12), exit_threshold, hold, size_step, state)
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
