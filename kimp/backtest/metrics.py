"""Performance metrics of an equity curve, with the definitions spelled out (and tested by hand).

Per-bar simple returns ``r_t = e_t / e_{t-1} - 1`` with ``e_{-1}`` = the starting capital.
- total_return = e_last / capital - 1; annualized_return = (1 + total)^(periods_per_year / n) - 1
  (computed in log space and capped at e^700 - 1 for short runs).
- sharpe = mean(r) / std(r, ddof=1) x sqrt(periods_per_year) (risk-free rate 0).
- sortino = mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(periods_per_year).
- max_drawdown = max over t of 1 - e_t / max(capital, e_0..e_t) (a positive fraction).
- calmar = annualized_return / max_drawdown.
- Round trips: maximal runs of bars whose position keeps one non-zero sign; a round trip's PnL is the
  equity at its last bar (the exit fill is booked there) minus the equity before its first bar.
  win_rate = share of round trips with PnL > 0; profit_factor = gross wins / gross losses.
- turnover = traded notional (KRW, both legs) / capital; exposure = share of bars with a position.
Undefined ratios (no variance, no losing bar, no round trip, no drawdown) are NaN, never a made-up 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def trip_step(e_i, prev_e, pos_i, i, start, sign, before):
    """One bar of the round-trip scan: close the open trip when the position's sign changes, open one
    when a position appears. ``before`` is the equity before the open trip's first bar, ``prev_e`` the
    previous bar's equity (the capital at bar 0). Scalars only, shared with the vectorized engine's pass.
    Returns (start, sign, before, closed, pnl of the closed trip)."""
    s = 1.0 if pos_i > 0 else (-1.0 if pos_i < 0 else 0.0)
    closed = start >= 0 and s != sign
    pnl = e_i - before
    if closed:
        start = -1
    if s != 0 and start < 0:
        start = i
        sign = s
        before = prev_e
    return start, sign, before, closed, pnl


@njit(cache=True, nogil=True)
def round_trip_pnls(equity, position, capital):
    """PnL of each round trip (see the module docstring)."""
    n = equity.shape[0]
    out = np.empty(n)
    k = 0
    start = -1
    sign = 0.0
    before = capital
    prev = capital
    for i in range(n):
        start, sign, before, closed, pnl = trip_step(equity[i], prev, position[i], i, start, sign, before)
        if closed:
            out[k] = pnl
            k += 1
        prev = equity[i]
    if start >= 0:
        out[k] = equity[n - 1] - before
        k += 1
    return out[:k]


@njit(cache=True, nogil=True, inline="always")
def stats_step(e_i, i, prev, peak, mean, m2, down, mdd, held, pos_i):
    """One bar of :func:`_series_stats` (Welford mean/variance of returns, downside, drawdown, exposure);
    shared with the vectorized engine's fused pass. Returns (peak, mean, m2, down, mdd, held)."""
    r = e_i / prev - 1.0
    delta = r - mean
    mean += delta / (i + 1)
    m2 += delta * (r - mean)
    if r < 0:
        down += r * r
    if e_i > peak:
        peak = e_i
    dd = 1.0 - e_i / peak
    if dd > mdd:
        mdd = dd
    if pos_i != 0:
        held += 1
    return peak, mean, m2, down, mdd, held


@njit(cache=True, nogil=True)
def _series_stats(e, capital, position):
    """One pass: mean and sample std of returns, mean squared downside, max drawdown, exposure."""
    n = e.shape[0]
    prev = capital
    peak = capital
    mean = 0.0
    m2 = 0.0
    down = 0.0
    mdd = 0.0
    held = 0
    for i in range(n):
        peak, mean, m2, down, mdd, held = stats_step(
            e[i], i, prev, peak, mean, m2, down, mdd, held, position[i]
        )
        prev = e[i]
    return finish_stats(n, mean, m2, down, mdd, held)


@njit(cache=True, nogil=True, inline="always")
def finish_stats(n, mean, m2, down, mdd, held):
    """(mean, sample std, mean squared downside, max drawdown, exposure) from the running sums."""
    sd = math.sqrt(m2 / (n - 1)) if n > 1 else 0.0
    return mean, sd, down / n, mdd, held / n


def compute_metrics(
    equity: np.ndarray,
    *,
    periods_per_year: float,
    capital: float | None = None,
    position: np.ndarray | None = None,
    traded_notional: float = 0.0,
    costs: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """All metrics of one equity curve (KRW per bar); ``capital`` defaults to the first value."""
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0:
        raise ValueError("compute_metrics needs at least one equity value")
    cap = float(capital if capital is not None else e[0])
    n = e.size
    pos = np.zeros(n) if position is None else np.ascontiguousarray(position, dtype=np.float64)
    return metrics_from_stats(
        final_equity=float(e[-1]),
        n=n,
        capital=cap,
        periods_per_year=periods_per_year,
        stats=_series_stats(e, cap, pos),
        trips=round_trip_pnls(e, pos, cap),
        traded_notional=traded_notional,
        costs=costs,
    )


def metrics_from_stats(
    *,
    final_equity: float,
    n: int,
    capital: float,
    periods_per_year: float,
    stats: tuple[float, float, float, float, float],
    trips: np.ndarray,
    traded_notional: float = 0.0,
    costs: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The metrics from one pass's statistics (``_series_stats``: mean, sd, mean squared downside,
    max drawdown, exposure) and the round-trip PnLs: :func:`compute_metrics` without the passes, for the
    vectorized engine, which computes both inside its own pass over the bars."""
    nan = float("nan")
    cap = capital
    total = final_equity / cap - 1.0
    # In log space, capped: a short, lucky run annualizes to astronomically large numbers, not overflow.
    ann = math.expm1(min(math.log1p(total) * periods_per_year / n, 700.0)) if total > -1 else -1.0
    mean, sd, down_sq, mdd, exposure = stats
    downside = math.sqrt(down_sq)
    wins = float(trips[trips > 0].sum())
    losses = float(-trips[trips < 0].sum())
    out = {
        "total_return": float(total),
        "annualized_return": float(ann),
        "volatility": sd * math.sqrt(periods_per_year),
        "sharpe": mean / sd * math.sqrt(periods_per_year) if sd > 0 else nan,
        "sortino": mean / downside * math.sqrt(periods_per_year) if downside > 0 else nan,
        "max_drawdown": float(mdd),
        "calmar": float(ann) / mdd if mdd > 0 else nan,
        "win_rate": float((trips > 0).mean()) if trips.size else nan,
        "profit_factor": wins / losses if losses > 0 else nan,
        "round_trips": float(trips.size),
        "turnover": float(traded_notional) / cap,
        "exposure": float(exposure),
        "final_equity": final_equity,
        "pnl": final_equity - cap,
        "bars": float(n),
    }
    for kind, value in (costs or {}).items():
        out[f"cost_{kind}"] = float(value)
    return out
