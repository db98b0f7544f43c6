"""The vectorized engine: numba passes over bars, for research sweeps.

Signals are arrays computed up front (NumPy / numba). Three passes, all through the accounting of
:mod:`kimp.backtest.kernel` (so the event-driven engine's numbers, which a test checks):

1. :func:`decide_bars` finds the bars where something happens and does it there: sizes, clips and
   fills each decision at the bar close with the slippage and impact models (bar-level fills: taker, no
   latency), charges funding, starts and lands transfers. Most bars have nothing to do: a block scan
   skips them (see its docstring), so the pass costs little per quiet bar. It leaves one segment row
   wherever the state the marks read changed.
2. :func:`mark_segments` marks every bar's equity from those rows, a loop with nothing carried from bar
   to bar.
3. The metrics from the curve (:mod:`kimp.backtest.metrics`, the functions compute_metrics uses) and the
   round trips from the segment rows (a position's sign only changes where a segment starts).

Speed (benchmarks/bench_backtest.py, figures in docs/benchmarks.md): a year of 1-minute bars is tens of
megabytes per input array, more than the cache, so the passes are arranged to read each array as few
times as possible and to write only the equity per bar; the positions per bar and the result frames are
built from the run's records when first asked for (BacktestResult). Record buffers are per-thread
scratch, reused so that their pages stay mapped.
"""

from __future__ import annotations

import math
import threading
from functools import partial

import numpy as np
import polars as pl
from numba import njit

from kimp.backtest import kernel as K
from kimp.backtest.carry import ClosingState
from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import DAY_US, US, Market
from kimp.backtest.metrics import max_drawdown, return_stats, trip_step
from kimp.backtest.result import BacktestResult, finish, prepare

FIRST_TRADE_CAPACITY = 1 << 16  # records (fills, ...) the first pass has room for; see run_vectorized
BLOCK = 8  # bars the scan of decide_bars evaluates at once
_scratch = threading.local()


def scratch_buffer(name: str, rows: int, cols: int) -> np.ndarray:
    """This thread's record buffer ``name`` with room for ``rows`` rows, reused from run to run (its
    pages stay mapped). The result copies what it keeps (see result.finish), so reuse is safe; per thread,
    because parameter sweeps run backtests in threads."""
    buf = getattr(_scratch, name, None)
    if buf is None or buf.shape[0] < rows or buf.shape[1] != cols:
        buf = np.empty((rows, cols))
        setattr(_scratch, name, buf)
    return buf[:rows]


# Segment rows: from bar ``SEG_BAR`` on (until the next row's bar) the marked state is constant.
SEG_BAR, SEG_CASH_KR, SEG_POS_KR, SEG_CASH_BN, SEG_POS_BN, SEG_TRANSFER = range(6)
SEG_COLS = 6


@njit(cache=True, nogil=True, inline="always")
def record_segment(segs, nseg, i, S):
    """The state the marks read, as it stands after bar ``i``'s events (a row past the buffer is only
    counted: run_vectorized runs the passes again with room for every bar)."""
    if nseg < segs.shape[0]:
        segs[nseg, SEG_BAR] = i
        segs[nseg, SEG_CASH_KR] = S[K.S_CASH_KR]
        segs[nseg, SEG_POS_KR] = S[K.S_POS_KR]
        segs[nseg, SEG_CASH_BN] = S[K.S_CASH_BN]
        segs[nseg, SEG_POS_BN] = S[K.S_POS_BN]
        segs[nseg, SEG_TRANSFER] = S[K.C_TRANSFER]
    return nseg + 1


@njit(cache=True, nogil=True, inline="always")
def segment_span(segs, nseg, k, n):
    """The bars [lo, hi) of segment row ``k`` (empty when a later row starts at the same bar)."""
    lo = np.int64(segs[k, SEG_BAR])
    hi = np.int64(segs[k + 1, SEG_BAR]) if k + 1 < nseg else n
    return lo, hi


@njit(cache=True, nogil=True, inline="always")
def first_open_at(ts, t):
    """The first bar opening at or after ``t`` (``len(ts)`` if none)."""
    return np.searchsorted(ts, t)


@njit(cache=True, nogil=True, error_model="numpy")
def decide_bars(
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
    kr_hist,
    bn_hist,
    hist,
    vol_window,
    funding_from,
    P,
    S,
    trades,
    rej,
    xfer,
    segs,
):
    """The first pass: every bar's events (transfers landing, funding, the day-end close-out, the decision
    and its fills), and a segment row wherever they changed what the marks read. No per-bar output: the
    equity is marked by :func:`mark_segments` from the rows. The impact window reads ``kr_hist`` /
    ``bn_hist``, the closes with ``hist`` carried bars before bar 0 (the same arrays as the closes
    when the run starts fresh); funding instants are those after ``funding_from`` (µs).

    Most bars have nothing to do, so a lean inner scan skips them, stopping only at a bar where something
    may happen: a coin transfer due, a funding instant, the last bar of a day, or a tradable bar that
    :func:`kernel.quiet_at` does not call quiet. Such a bar gets the full treatment, in the order of the
    per-bar rule (land, fund, decide). The scan keeps the state it reads in registers, which is what makes
    it cheap.

    Returns (fills, rejections, transfers, segment rows).
    """
    n = ts.shape[0]
    ntr = 0
    nrej = 0
    nx = 0
    nseg = record_segment(segs, 0, 0, S)  # the starting state, from bar 0
    funding_us = np.int64(P[K.P_FUNDING_US])
    perp = P[K.P_PERP] != 0 and P[K.P_FUNDING_RATE] != 0
    never = np.iinfo(np.int64).max
    next_funding = (funding_from // funding_us + 1) * funding_us if perp else never  # in (funding_from, ...]
    # Parameters the scan reads, as scalars (see kernel.quiet_at on why no arrays there).
    w_kr = P[K.P_W_KR]
    w_bn = P[K.P_W_BN]
    cap_krw = P[K.P_CAP_KRW]
    cap_usdt = P[K.P_CAP_USDT]
    max_frac = P[K.P_MAX_FRAC]
    perp_hedge = P[K.P_PERP]
    rebal = P[K.P_REBAL]
    # The bars where time alone makes something happen (kept until that time moves): the first bar
    # whose close reaches the next funding instant, the last bar of the current UTC day, the first bar
    # whose close reaches the coins in flight.
    fund_bar = first_open_at(ts, next_funding - interval_us) if perp else n
    day_bar = -1
    flight_due = -1.0
    flight_bar = n
    i = 0
    while i < n:
        # --- the scan: the state it reads is constant until it stops -----------------------------------
        last = S[K.S_LAST_TARGET]
        q_kr = S[K.S_POS_KR]
        q_bn = S[K.S_POS_BN]
        avail_kr = S[K.S_INV0_KR] + S[K.S_TIN_KR]
        avail_bn = S[K.S_INV0_BN] + S[K.S_TIN_BN]
        if flat_day_end and day_bar < i:  # the last bar of bar i's UTC day (the next opens on the next day)
            day_bar = first_open_at(ts, (ts[i] // DAY_US + 1) * DAY_US) - 1
        if S[K.S_FLIGHT_QTY] <= 0:
            flight_bar = n
            flight_due = -1.0
        elif S[K.S_FLIGHT_DUE] != flight_due:  # coins sent since the last look
            flight_due = S[K.S_FLIGHT_DUE]
            flight_bar = first_open_at(ts, np.int64(math.ceil(flight_due)) - interval_us)
        stop = min(fund_bar, flight_bar, day_bar if flat_day_end else n)
        # Bars before ``stop`` need a decision only where tradable and not quiet. They are scanned in
        # blocks of BLOCK bars, each evaluated whole (no early exit: it runs on several bars per
        # instruction) into a bit mask whose lowest set bit is the first bar that needs one. Flat and
        # staying flat (target 0) is quiet and any other target is not: that case reads no prices.
        flat = last == 0.0 and q_kr == 0.0 and q_bn == 0.0
        while i < stop:
            width = min(BLOCK, stop - i)
            mask = 0
            if flat:
                for j in range(width):
                    u = np.uint64(i + j)  # an unsigned index: no negative-index wraparound code
                    mask |= np.int64(tradable[u] & (target[u] != 0.0)) << j
            else:
                for j in range(width):
                    u = np.uint64(i + j)
                    act = tradable[u] & ~K.quiet_at(
                        last,
                        q_kr,
                        q_bn,
                        avail_kr,
                        avail_bn,
                        w_kr,
                        w_bn,
                        cap_krw,
                        cap_usdt,
                        max_frac,
                        perp_hedge,
                        rebal,
                        target[u],
                        kr_close[u],
                        bn_close[u],
                        conv[u],
                    )
                    mask |= np.int64(act) << j
            if mask != 0:
                while not mask & 1:  # to the first bar that acts
                    mask >>= 1
                    i += 1
                break
            i += width
        if i == n:
            break
        # --- bar i in full: the per-bar rule ---------------------------------------------------------
        t = ts[i] + interval_us
        if S[K.S_FLIGHT_QTY] > 0 and S[K.S_FLIGHT_DUE] <= t:
            K.land_transfer(S, t)  # moves inventory between venues: nothing the marks read
        changed = False
        if perp and t >= next_funding:
            k = (t - next_funding) // funding_us + 1
            next_funding += k * funding_us
            fund_bar = first_open_at(ts, next_funding - interval_us)
            if S[K.S_POS_BN] != 0:
                K.charge_funding(S, P, bn_close[i], conv[i], k)
                changed = True
        forced = flat_day_end and (i + 1 == n or ts[i + 1] // DAY_US != ts[i] // DAY_US)
        s = 0.0 if forced else target[i]
        if (tradable[i] or forced) and not K.quiet(S, P, s, kr_close[i], bn_close[i], conv[i]):
            ntr, nrej, nx = K.bar_decision_at(
                S,
                P,
                i,
                i + hist,
                t,
                s,
                kr_close[i],
                bn_close[i],
                conv[i],
                kr_ref_buy[i],
                kr_ref_sell[i],
                bn_ref_buy[i],
                bn_ref_sell[i],
                kr_vol[i],
                bn_vol[i],
                kr_hist,
                bn_hist,
                vol_window,
                trades,
                ntr,
                rej,
                nrej,
                xfer,
                nx,
            )
            changed = True
        if changed:
            nseg = record_segment(segs, nseg, i, S)
        i += 1
    return ntr, nrej, nx, nseg


@njit(cache=True, nogil=True)
def mark_segments(segs, nseg, cap_total, fx_cost, kr_close, bn_close, conv, equity):
    """The second pass: each bar's equity (:func:`kernel.mark_at`, so the event-driven engine's bits)
    from the segment rows. Within a segment the state is constant, so the inner loop carries nothing
    from bar to bar and runs on several bars per instruction. A flat segment reads no coin prices: its
    legs' ``0 x price`` terms are exactly 0 (prices are finite), so its marks are the same bits."""
    n = equity.shape[0]
    for k in range(nseg):
        lo, hi = segment_span(segs, nseg, k, n)
        cash_kr = segs[k, SEG_CASH_KR]
        q_kr = segs[k, SEG_POS_KR]
        cash_bn = segs[k, SEG_CASH_BN]
        q_bn = segs[k, SEG_POS_BN]
        tc = segs[k, SEG_TRANSFER]
        if q_kr == 0.0 and q_bn == 0.0:
            for i in range(lo, hi):
                equity[i] = K.mark_at(cap_total, fx_cost, cash_kr, 0.0, cash_bn, 0.0, tc, 0.0, 0.0, conv[i])
        else:
            for i in range(lo, hi):
                equity[i] = K.mark_at(
                    cap_total, fx_cost, cash_kr, q_kr, cash_bn, q_bn, tc, kr_close[i], bn_close[i], conv[i]
                )


@njit(cache=True, nogil=True)
def segment_positions(segs, nseg, n):
    """Both legs' positions at every bar, expanded from the segment rows (for the equity frame)."""
    pos = np.empty((2, n))
    for k in range(nseg):
        lo, hi = segment_span(segs, nseg, k, n)
        pos[0, lo:hi] = segs[k, SEG_POS_KR]
        pos[1, lo:hi] = segs[k, SEG_POS_BN]
    return pos


@njit(cache=True, nogil=True)
def segment_trips(segs, nseg, pos_col, equity, capital, trips):
    """Round trips (:func:`metrics.round_trip_pnls`) from the segment rows: a position's sign can only
    change where a segment starts, so :func:`metrics.trip_step` there gives the per-bar scan's trips.
    Also counts the bars with a position (exposure). Returns (round trips, bars held)."""
    n = equity.shape[0]
    ntrips = 0
    held = 0
    start = -1
    sign = 0.0
    before = capital
    for k in range(nseg):
        lo, hi = segment_span(segs, nseg, k, n)
        if lo == hi:
            continue  # replaced by a later row at the same bar
        q = segs[k, pos_col]
        prev = equity[lo - 1] if lo > 0 else capital
        start, sign, before, closed, pnl = trip_step(equity[lo], prev, q, lo, start, sign, before)
        if closed:
            trips[ntrips] = pnl
            ntrips += 1
        if q != 0:
            held += hi - lo
    if start >= 0:
        trips[ntrips] = equity[n - 1] - before
        ntrips += 1
    return ntrips, held


def _positions(segs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    kr, bn = segment_positions(segs, segs.shape[0], n)
    return kr, bn


def run_vectorized(
    market: Market,
    signals: pl.DataFrame,
    config: BacktestConfig | None = None,
    *,
    start: ClosingState | None = None,
) -> BacktestResult:
    """Backtest ``signals`` (ts, target) on ``market`` with bar-level fills. See BacktestResult.

    ``start``: the closing state of the run over the bars before (``result.closing``) to continue
    from; without it the run starts flat (kimp.backtest.carry)."""
    cfg = config or BacktestConfig()
    if start is not None and start.orders.shape[0]:
        raise ValueError(
            f"the closing state has {start.orders.shape[0]} working order(s) (event-driven engine with "
            "books): continue it with run_event_driven"
        )
    n = market.n
    equity = np.empty(n)
    # The record buffers (fills, rejections, transfers, segments) start small and the pass runs again
    # with room for every bar in the rare run that overflows one. They are per-thread scratch, reused
    # from run to run: fresh ones page-faulted in on every run cost more than a tenth of the pass.
    capacity = min(2 * n + 64, FIRST_TRADE_CAPACITY)
    while True:
        prep = prepare(
            market,
            signals,
            cfg,
            trade_capacity=capacity,
            record_capacity=capacity,
            alloc=scratch_buffer,
            start=start,
        )
        segs = scratch_buffer("segments", capacity, SEG_COLS)
        ntr, nrej, nx, nseg = decide_bars(
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
            prep.kr_hist,
            prep.bn_hist,
            prep.hist,
            cfg.costs.impact.vol_window,
            np.int64(prep.funding_from),
            prep.params,
            prep.state,
            prep.trades,
            prep.rejections,
            prep.transfers,
            segs,
        )
        if max(ntr, nrej, nx, nseg) <= capacity or capacity == 2 * n + 64:
            break
        capacity = 2 * n + 64  # two fills a bar at most; one of each other record
    P = prep.params
    capital = prep.opening  # the metrics' reference: the starting capital, or the carried last mark
    mark_segments(
        segs, nseg, P[K.P_CAP_TOTAL], P[K.P_FX_COST], market.kr_close, market.bn_close, market.conv, equity
    )
    pos_col = SEG_POS_BN if cfg.mode == "binance_only" else SEG_POS_KR  # the metrics' position
    trips = np.empty(nseg + 1)
    ntrips, held = segment_trips(segs, nseg, pos_col, equity, capital, trips)
    # The return statistics and drawdown from the finished curve, by the functions compute_metrics uses
    # (so the same bits).
    mean, sd, down_sq = return_stats(equity, capital)
    stats = (mean, sd, down_sq, max_drawdown(equity, capital), held / n)
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
        positions=partial(_positions, segs[:nseg].copy(), n),  # a copy: segs is this thread's scratch
        n_trades=ntr,
        n_rejections=nrej,
        n_transfers=nx,
        stats=stats,
        trips=trips[:ntrips],
    )
