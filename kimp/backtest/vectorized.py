"""The vectorized engine: one numba pass over bars, for research sweeps.

Signals are arrays computed up front (NumPy / numba); the pass sizes, clips and fills each decision at
the bar close with the slippage and impact models (bar-level fills: taker, no latency), charges funding
and transfers and marks the equity, all through :mod:`kimp.backtest.kernel`.

Speed (the benchmark is benchmarks/bench_backtest.py): everything per bar happens in that one pass, so
each input array is read once and nothing per bar is materialized that the result does not return.
Bar close times and day ends are derived from ``ts`` on the fly, the impact model's rolling volatility
is kept as running sums (the same steps as :func:`kernel.rolling_sigma`, so the same bits) over the legs'
bar returns divided before the pass (a loop that divides several bars per instruction) and turned into a
number only at a fill, and drawdown, exposure and round trips are accumulated as the equity is marked
(the same steps as :mod:`kimp.backtest.metrics`). The return statistics are computed after the pass from
the finished curve by the function compute_metrics uses: their sums need no division per bar there,
where a running variance in the pass waited on one every bar.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from kimp.backtest import kernel as K
from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import DAY_US, US, Market
from kimp.backtest.metrics import drawdown_end, drawdown_step, return_stats, trip_step
from kimp.backtest.result import BacktestResult, finish, prepare

FIRST_TRADE_CAPACITY = 1 << 16  # fills listed by the first pass; see run_vectorized


@njit(cache=True, nogil=True)
def decide_bar(
    S,
    P,
    i,
    t,
    s,
    kr_px,
    bn_px,
    conv,
    kr_ref_buy,
    kr_ref_sell,
    bn_ref_buy,
    bn_ref_sell,
    kr_vol,
    bn_vol,
    kr_sigma,
    bn_sigma,
    trades,
    ntr,
    rej,
    nrej,
    xfer,
    nxfer,
):
    """:func:`kernel.bar_decision` as a real (not inlined) call: it runs only on the bars where something
    happens, and keeping its code out of the pass's loop leaves that loop small (fewer values spilled
    to the stack on every bar)."""
    return K.bar_decision(
        S,
        P,
        i,
        t,
        s,
        kr_px,
        bn_px,
        conv,
        kr_ref_buy,
        kr_ref_sell,
        bn_ref_buy,
        bn_ref_sell,
        kr_vol,
        bn_vol,
        kr_sigma,
        bn_sigma,
        trades,
        ntr,
        rej,
        nrej,
        xfer,
        nxfer,
    )


@njit(cache=True, nogil=True)
def run_bars(
    ts,
    interval_us,
    flat_day_end,
    kr_close,
    bn_close,
    conv,
    target,
    tradable,
    kr_ref_buy,
    kr_ref_sell,
    bn_ref_buy,
    bn_ref_sell,
    kr_vol,
    bn_vol,
    vol_window,
    kr_ret,
    bn_ret,
    metric_bn,
    P,
    S,
    trades,
    rej,
    xfer,
    trips,
    equity,
    pos_kr,
    pos_bn,
):
    """The pass. ``metric_bn``: the metrics' position is the Binance leg's (binance_only mode).

    Returns (fills, rejections, transfers, round trips, max drawdown, bars with a position).
    """
    n = ts.shape[0]
    ntr = 0
    nrej = 0
    nx = 0
    funding_us = np.int64(P[K.P_FUNDING_US])
    perp = P[K.P_PERP] != 0 and P[K.P_FUNDING_RATE] != 0
    first_open = ts[0]
    next_funding = (first_open // funding_us + 1) * funding_us  # funding instants in (first_open, ...]
    # Parameters the per-bar path reads, as scalars (see kernel.quiet_at on why no arrays there).
    w_kr = P[K.P_W_KR]
    w_bn = P[K.P_W_BN]
    cap_krw = P[K.P_CAP_KRW]
    cap_usdt = P[K.P_CAP_USDT]
    max_frac = P[K.P_MAX_FRAC]
    perp_hedge = P[K.P_PERP]
    rebal = P[K.P_REBAL]
    capital = P[K.P_CAP_TOTAL]
    fx_cost = P[K.P_FX_COST]
    # Rolling volatility of both legs (impact model): running sums of the returns in the window.
    need_sigma = P[K.P_IMPACT_COEF] > 0
    kr_s1 = kr_s2 = bn_s1 = bn_s2 = 0.0
    # Drawdown, exposure and round-trip accumulators (metrics._drawdown_exposure, round_trip_pnls); the
    # return statistics come from the finished curve (see run_vectorized).
    peak = low = capital  # a positive capital: BacktestConfig validates both venues' capital > 0
    mdd = 0.0
    held = 0
    prev = capital
    trip_start = -1
    trip_sign = 0.0
    trip_before = capital
    ntrips = 0
    day_next = first_open // DAY_US
    for i in range(n):
        t = ts[i] + interval_us
        kr_px = kr_close[i]
        bn_px = bn_close[i]
        cv = conv[i]
        if need_sigma and i > 0:
            # Returns divided up front (bar_returns_into); the one leaving the window is window bars back.
            back = i - vol_window
            x = kr_ret[i]
            kr_s1, kr_s2 = K.push_return(kr_s1, kr_s2, x, kr_ret[back] if back > 0 else 0.0, back > 0)
            x = bn_ret[i]
            bn_s1, bn_s2 = K.push_return(bn_s1, bn_s2, x, bn_ret[back] if back > 0 else 0.0, back > 0)
        if S[K.S_FLIGHT_QTY] > 0 and S[K.S_FLIGHT_DUE] <= t:
            K.land_transfer(S, t)
        if perp and t >= next_funding:
            k = (t - next_funding) // funding_us + 1
            next_funding += k * funding_us
            if S[K.S_POS_BN] != 0:
                K.charge_funding(S, P, bn_px, cv, k)
        forced = False
        if flat_day_end:  # the last bar of each UTC day (by open time), as Market.day_end
            day_i = day_next
            if i + 1 < n:
                day_next = ts[i + 1] // DAY_US
                forced = day_i != day_next
            else:
                forced = True
        s = 0.0 if forced else target[i]
        if (tradable[i] or forced) and not K.quiet_at(
            S[K.S_LAST_TARGET],
            S[K.S_POS_KR],
            S[K.S_POS_BN],
            S[K.S_INV0_KR] + S[K.S_TIN_KR],
            S[K.S_INV0_BN] + S[K.S_TIN_BN],
            w_kr,
            w_bn,
            cap_krw,
            cap_usdt,
            max_frac,
            perp_hedge,
            rebal,
            s,
            kr_px,
            bn_px,
            cv,
        ):
            kr_sigma = K.sigma_of(kr_s1, kr_s2, i, vol_window) if need_sigma else 0.0
            bn_sigma = K.sigma_of(bn_s1, bn_s2, i, vol_window) if need_sigma else 0.0
            ntr, nrej, nx = decide_bar(
                S,
                P,
                i,
                t,
                s,
                kr_px,
                bn_px,
                cv,
                kr_ref_buy[i],
                kr_ref_sell[i],
                bn_ref_buy[i],
                bn_ref_sell[i],
                kr_vol[i],
                bn_vol[i],
                kr_sigma,
                bn_sigma,
                trades,
                ntr,
                rej,
                nrej,
                xfer,
                nx,
            )
        q_kr = S[K.S_POS_KR]
        q_bn = S[K.S_POS_BN]
        e = K.mark_at(
            capital, fx_cost, S[K.S_CASH_KR], q_kr, S[K.S_CASH_BN], q_bn, S[K.C_TRANSFER], kr_px, bn_px, cv
        )
        equity[i] = e
        pos_kr[i] = q_kr
        pos_bn[i] = q_bn
        q = q_bn if metric_bn else q_kr
        peak, low, mdd = drawdown_step(e, peak, low, mdd)
        held += q != 0
        trip_start, trip_sign, trip_before, closed, pnl = trip_step(
            e, prev, q, i, trip_start, trip_sign, trip_before
        )
        if closed:
            trips[ntrips] = pnl
            ntrips += 1
        prev = e
    if trip_start >= 0:
        trips[ntrips] = equity[n - 1] - trip_before
        ntrips += 1
    return ntr, nrej, nx, ntrips, drawdown_end(peak, low, mdd), held


@njit(cache=True, nogil=True, error_model="numpy")
def bar_returns_into(close, out):
    """``out[i] = kernel.bar_return(close[i - 1], close[i])`` (0 at bar 0), before the pass. With numpy's
    error model (no zero-division check, which the guard makes moot anyway) this loop divides several
    bars per instruction, where the pass's own division was one a bar. The same two roundings as
    ``bar_return``, so the same bits."""
    out[0] = 0.0
    for i in range(close.shape[0] - 1):
        prev = close[i]
        out[i + 1] = close[i + 1] / prev - 1.0 if prev > 0 else 0.0


def run_vectorized(
    market: Market, signals: pl.DataFrame, config: BacktestConfig | None = None
) -> BacktestResult:
    """Backtest ``signals`` (ts, target) on ``market`` with bar-level fills. See BacktestResult."""
    cfg = config or BacktestConfig()
    n = market.n
    # One block for the three per-bar outputs and two rows of bar returns (the legs' for the impact model,
    # then the equity's for the metrics): rows are contiguous, so polars takes the outputs without a copy,
    # and one allocation is kept by the C allocator and handed back already mapped on the next run, where
    # separate ones are returned to the OS and page-faulted in again every time (the result holds the
    # block: 5 x 8 bytes per bar).
    equity, pos_kr, pos_bn, kr_ret, bn_ret = np.empty((5, n))
    if cfg.costs.impact.coef > 0:  # the impact model's volatility: both legs' bar returns
        bar_returns_into(market.kr_close, kr_ret)
        bar_returns_into(market.bn_close, bn_ret)
    trips = np.empty(n + 1)
    # The trade buffer starts small (its pages are reused from run to run) and the pass runs again with
    # room for two fills on every bar in the rare run that fills it.
    full_capacity = 2 * n + 64
    capacity = min(full_capacity, FIRST_TRADE_CAPACITY)
    while True:
        prep = prepare(market, signals, cfg, trade_capacity=capacity)
        ntr, nrej, nx, ntrips, mdd, held = run_bars(
            market.ts,
            np.int64(market.interval_s * US),
            cfg.flat_at_day_end,
            market.kr_close,
            market.bn_close,
            market.conv,
            prep.target,
            market.tradable,
            prep.kr_ref_buy,
            prep.kr_ref_sell,
            prep.bn_ref_buy,
            prep.bn_ref_sell,
            market.kr_volume,
            market.bn_volume,
            cfg.costs.impact.vol_window,
            kr_ret,
            bn_ret,
            cfg.mode == "binance_only",
            prep.params,
            prep.state,
            prep.trades,
            prep.rejections,
            prep.transfers,
            trips,
            equity,
            pos_kr,
            pos_bn,
        )
        if ntr <= capacity or capacity == full_capacity:
            break
        capacity = full_capacity
    # The return statistics from the finished curve, by the function compute_metrics uses (so the same
    # bits): NumPy divides several bars per instruction and the sums wait on no division, which is
    # cheaper than a division per bar inside the pass.
    mean, sd, down_sq = return_stats(equity, float(prep.params[K.P_CAP_TOTAL]), kr_ret)  # room reused
    stats = (mean, sd, down_sq, mdd, held / n)
    if cfg.fill == "book":
        prep.notes.append(
            "the vectorized engine always fills at bar level; fill='book' is for run_event_driven"
        )
    return finish(
        "vectorized",
        market,
        cfg,
        prep,
        equity=equity,
        pos_kr=pos_kr,
        pos_bn=pos_bn,
        n_trades=ntr,
        n_rejections=nrej,
        n_transfers=nx,
        stats=stats,
        trips=trips[:ntrips],
    )
