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


def series_stats(
    e: np.ndarray, capital: float, position: np.ndarray
) -> tuple[float, float, float, float, float]:
    """(mean, sd, mean squared downside, max drawdown, exposure) of the curve ``e`` (float64) and the
    position held at each bar: the statistics :func:`metrics_from_stats` takes."""
    mean, sd, down_sq = return_stats(e, capital)
    mdd, held = _drawdown_exposure(e, capital, position)
    return mean, sd, down_sq, mdd, held / e.shape[0]


@njit(cache=True, nogil=True, inline="always")
def _return_terms(e, i, capital, shift):
    """Bar ``i``'s return less ``shift``, and its squared downside."""
    r = e[i] / (e[i - 1] if i > 0 else capital) - 1.0
    m = min(r, 0.0)
    return r - shift, m * m


@njit(cache=True, nogil=True, error_model="numpy")
def return_stats(e, capital):
    """Mean and sample std of the bar returns of the curve ``e`` and their mean squared downside
    ``mean(min(r, 0)^2)``, in one pass with each return computed where it is summed (no array of them).

    The variance comes from sums of the returns' deviations from the first return (the shifted-data
    sums: no cancellation when the mean is large against the spread, and returns that are all exactly
    equal give a std of exactly 0, no rounding noise made into a Sharpe). NumPy's error model (a zero
    equity gives inf, as NumPy would). The sums run in four explicit lanes combined in a fixed order
    (several bars per instruction without ``fastmath`` reassociation, whose order the compiler picks per
    compiled copy): the function is compiled once per argument types (a read-only curve is another
    type), and every copy must give the same bits, cached or not (issue 11).
    """
    n = e.shape[0]
    if n == 0:
        return 0.0, 0.0, 0.0
    shift = e[0] / capital - 1.0
    a1 = b1 = c1 = f1 = 0.0
    a2 = b2 = c2 = f2 = 0.0
    da = db = dc = df = 0.0
    i = 0
    while i + 4 <= n:
        xa, ya = _return_terms(e, i, capital, shift)
        xb, yb = _return_terms(e, i + 1, capital, shift)
        xc, yc = _return_terms(e, i + 2, capital, shift)
        xf, yf = _return_terms(e, i + 3, capital, shift)
        a1 += xa
        b1 += xb
        c1 += xc
        f1 += xf
        a2 += xa * xa
        b2 += xb * xb
        c2 += xc * xc
        f2 += xf * xf
        da += ya
        db += yb
        dc += yc
        df += yf
        i += 4
    while i < n:
        x, y = _return_terms(e, i, capital, shift)
        a1 += x
        a2 += x * x
        da += y
        i += 1
    d1 = (a1 + b1) + (c1 + f1)
    d2 = (a2 + b2) + (c2 + f2)
    down = (da + db) + (dc + df)
    mean = shift + d1 / n
    sd = 0.0
    if n > 1:
        var = (d2 - d1 * d1 / n) / (n - 1)
        sd = math.sqrt(var) if var > 0 else 0.0
    return mean, sd, down / n


@njit(cache=True, nogil=True, inline="always")
def drawdown_step(x, peak, low, mdd):
    """One bar of the max drawdown ``max_t 1 - e_t / peak_t`` (``peak_t`` = max(capital, e_0..e_t))
    without a division per bar: while the peak stays put, ``1 - e / peak`` is largest at the segment's
    lowest equity ``low``, and rounded division by a positive peak and rounded subtraction are monotone,
    so ``1 - low / peak`` once per peak segment (here, when a new peak closes it; :func:`drawdown_end`
    for the last) has exactly the bits of the per-bar maximum. Needs a positive capital (the first
    peak). Shared with the vectorized engine's pass. Returns (peak, low, mdd)."""
    if x > peak:  # rare after the first bars, so well predicted
        dd = 1.0 - low / peak
        if dd > mdd:
            mdd = dd
        peak = x
        low = x
    elif x < low:  # NaN never lowers it (its drawdown compares false)
        low = x
    return peak, low, mdd


@njit(cache=True, nogil=True, inline="always")
def drawdown_end(peak, low, mdd):
    """The max drawdown once the last peak segment is closed (see :func:`drawdown_step`)."""
    dd = 1.0 - low / peak
    return dd if dd > mdd else mdd


@njit(cache=True, nogil=True)
def _drawdown_exposure(e, capital, position):
    """Max drawdown (see :func:`max_drawdown`) and the number of bars with a position."""
    held = 0
    for i in range(e.shape[0]):
        held += position[i] != 0
    return max_drawdown(e, capital), held


@njit(cache=True, nogil=True)
def max_drawdown(e, capital):
    """Max drawdown of the curve ``e`` (see :func:`drawdown_step`), the capital being the first peak."""
    n = e.shape[0]
    peak = capital
    mdd = 0.0
    if not capital > 0:  # a peak <= 0 reverses the order of division: per bar
        for i in range(n):
            x = e[i]
            if x > peak:
                peak = x
            dd = 1.0 - x / peak
            if dd > mdd:
                mdd = dd
        return mdd
    low = capital  # the capital's own drawdown is 0
    # Blocks of 8 bars: a block with no new peak only lowers ``low`` to its minimum, which is what the
    # bar-by-bar steps would do (strict comparisons, so NaN is never taken, as there); its maximum and
    # minimum run on several bars per instruction. A block with a new peak is stepped bar by bar.
    i = 0
    while i + 8 <= n:
        hi = -np.inf
        lo = np.inf
        for j in range(i, i + 8):
            x = e[j]
            hi = x if x > hi else hi
            lo = x if x < lo else lo
        if hi > peak:
            for j in range(i, i + 8):
                peak, low, mdd = drawdown_step(e[j], peak, low, mdd)
        elif lo < low:
            low = lo
        i += 8
    for j in range(i, n):
        peak, low, mdd = drawdown_step(e[j], peak, low, mdd)
    return drawdown_end(peak, low, mdd)


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
        stats=series_stats(e, cap, pos),
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
    """The metrics from the statistics of :func:`series_stats` (mean, sd, mean squared downside,
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
