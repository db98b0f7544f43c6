"""The event-driven engine: a time-ordered stream of events, orders with latency, fills against the book.

Events (sorted by time, then by kind in this order, so that at one instant the market is updated
before anything acts on it): FX updates (the conversion rate, at its publication time), L10 order-book
snapshots per leg, bar closes (marks), funding instants of a perp hedge, and decisions (one per bar
close). Transfers in flight land at the first decision at or after their arrival time.

Fills:
- ``fill="bar"``: a decision fills at the bar close with the slippage and impact models, exactly as
  the vectorized engine (same kernel functions): this is the parity mode.
- ``fill="book"``: a decision cancels the open orders and sends one order per leg; it becomes active
  ``latency_ms`` later and meets the first snapshot of its leg at or after that instant.
  market: walks the 10 levels, the rest beyond L10 is cancelled (counted in ``unfilled_qty``; the next
  decision sends it again). ioc: walks the levels up to its limit, the rest is cancelled. limit: takes
  what crosses its limit on arrival (taker), then rests; while resting it fills at its limit price, as
  maker, against any later snapshot whose opposite side crosses the limit, up to the displayed size
  there, until ``limit_ttl_s`` or the next decision. Limit price = the leg's mid at the decision x
  (1 + side x limit_offset_bps). Our fills do not deplete later snapshots (each snapshot is fresh
  liquidity: no permanent impact). Slippage of a book fill = (VWAP - mid) x qty x side.
  Without books (e.g. the real hourly samples) the engine falls back to bar fills and says so in notes.
  Orders of the last decisions that no snapshot reaches are closed out at the last bar close (note).
Equity is marked at every bar close with the bar closes, in both modes.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from kimp.backtest import kernel as K
from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import US, Book, Market
from kimp.backtest.result import BacktestResult, finish, prepare

EV_FX, EV_BOOK_KR, EV_BOOK_BN, EV_BAR, EV_FUNDING, EV_DECIDE = 0, 1, 2, 3, 4, 5
MAX_ORDERS = 8
O_MARKET, O_LIMIT, O_IOC = 0, 1, 2


@njit(cache=True, nogil=True)
def walk_book(side, qty, limit, px, sz, j):
    """Take up to ``qty`` from row ``j`` of the opposite side's levels, never beyond ``limit`` (NaN: none).

    Returns (filled, notional). Absent levels (NaN or non-positive) end the walk.
    """
    rem = qty
    notional = 0.0
    for lvl in range(px.shape[1]):
        p = px[j, lvl]
        s = sz[j, lvl]
        if not (p > 0) or not (s > 0):
            break
        if limit == limit and ((side > 0 and p > limit) or (side < 0 and p < limit)):
            break
        take = min(rem, s)
        notional += take * p
        rem -= take
        if rem <= 0:
            break
    return qty - rem, notional


@njit(cache=True, nogil=True)
def resting_fill(side, qty, limit, px, sz, j):
    """A resting limit order against a later snapshot: displayed size that crosses the limit."""
    avail = 0.0
    for lvl in range(px.shape[1]):
        p = px[j, lvl]
        s = sz[j, lvl]
        if not (p > 0) or not (s > 0):
            break
        if (side > 0 and p > limit) or (side < 0 and p < limit):
            break
        avail += s
    return min(qty, avail)


@njit(cache=True, nogil=True)
def run_events(
    ev_t,
    ev_kind,
    ev_i,
    book_mode,
    first_open,
    kr_close,
    bn_close,
    fx_rate,
    conv0,
    target,
    tradable,
    day_end,
    kr_ref_buy,
    kr_ref_sell,
    bn_ref_buy,
    bn_ref_sell,
    kr_vol,
    bn_vol,
    vol_window,
    kr_bid_px,
    kr_bid_sz,
    kr_ask_px,
    kr_ask_sz,
    bn_bid_px,
    bn_bid_sz,
    bn_ask_px,
    bn_ask_sz,
    P,
    S,
    trades,
    rej,
    xfer,
    equity,
    pos_kr,
    pos_bn,
):
    ntr = 0
    nrej = 0
    nx = 0
    conv = conv0
    last_kr = kr_close[0]
    last_bn = bn_close[0]
    last_bar = 0
    j_kr = -1
    j_bn = -1
    o_live = np.zeros(MAX_ORDERS, dtype=np.bool_)
    o_leg = np.zeros(MAX_ORDERS, dtype=np.int64)
    o_rem = np.zeros(MAX_ORDERS)
    o_limit = np.zeros(MAX_ORDERS)
    o_active = np.zeros(MAX_ORDERS, dtype=np.int64)
    o_expire = np.zeros(MAX_ORDERS, dtype=np.int64)
    o_kind = np.zeros(MAX_ORDERS, dtype=np.int64)
    o_rested = np.zeros(MAX_ORDERS, dtype=np.bool_)
    o_bar = np.zeros(MAX_ORDERS, dtype=np.int64)
    perp = P[K.P_PERP] != 0 and P[K.P_FUNDING_RATE] != 0
    latency = np.int64(P[K.P_LATENCY_US])
    ttl = np.int64(P[K.P_LIMIT_TTL_US])
    kind_cfg = np.int64(P[K.P_ORDER_TYPE])
    offset = P[K.P_LIMIT_OFFSET]
    for e in range(ev_t.shape[0]):
        t = ev_t[e]
        kind = ev_kind[e]
        i = ev_i[e]
        if kind == EV_FX:
            conv = fx_rate[i]
        elif kind == EV_BAR:
            last_kr = kr_close[i]
            last_bn = bn_close[i]
            last_bar = i
        elif kind == EV_FUNDING:
            if perp and S[K.S_POS_BN] != 0:
                K.charge_funding(S, P, last_bn, conv, 1)
        elif kind == EV_BOOK_KR or kind == EV_BOOK_BN:  # noqa: SIM109 (plain compares for numba)
            leg = 0 if kind == EV_BOOK_KR else 1
            if leg == 0:
                j_kr = i
            else:
                j_bn = i
            if not book_mode:
                continue
            for o in range(MAX_ORDERS):
                if not o_live[o] or o_leg[o] != leg or o_active[o] > t:
                    continue
                side = 1.0 if o_rem[o] > 0 else -1.0
                qa = abs(o_rem[o])
                if leg == 0:
                    mid = 0.5 * (kr_bid_px[i, 0] + kr_ask_px[i, 0])
                    opp_px = kr_ask_px if side > 0 else kr_bid_px
                    opp_sz = kr_ask_sz if side > 0 else kr_bid_sz
                else:
                    mid = 0.5 * (bn_bid_px[i, 0] + bn_ask_px[i, 0])
                    opp_px = bn_ask_px if side > 0 else bn_bid_px
                    opp_sz = bn_ask_sz if side > 0 else bn_bid_sz
                maker = False
                if o_kind[o] == O_LIMIT and o_rested[o]:
                    filled = resting_fill(side, qa, o_limit[o], opp_px, opp_sz, i)
                    notional = filled * o_limit[o]
                    maker = True
                else:
                    lim = np.nan if o_kind[o] == O_MARKET else o_limit[o]
                    filled, notional = walk_book(side, qa, lim, opp_px, opp_sz, i)
                    o_rested[o] = True
                if filled > 0:
                    price = notional / filled
                    slip = filled * (price - mid) * side
                    fee = K.apply_fill(S, P, leg, side * filled, price, maker, slip, 0.0, conv)
                    ntr = K.record_trade(
                        trades, ntr, t, o_bar[o], leg, side * filled, price, fee, slip, 0.0, conv, maker
                    )
                    o_rem[o] -= side * filled
                if abs(o_rem[o]) <= 1e-12 * max(qa, 1.0):
                    o_live[o] = False
                elif o_kind[o] != O_LIMIT or t >= o_expire[o]:
                    S[K.S_UNFILLED] += abs(o_rem[o])
                    o_live[o] = False
        else:  # EV_DECIDE
            K.land_transfer(S, t)
            forced = day_end[i]
            s = 0.0 if forced else target[i]
            if (tradable[i] or forced) and not K.quiet(S, P, s, last_kr, last_bn, conv):
                if not book_mode:
                    ntr, nrej, nx = K.bar_decision(
                        S,
                        P,
                        i,
                        t,
                        s,
                        last_kr,
                        last_bn,
                        conv,
                        kr_ref_buy[i],
                        kr_ref_sell[i],
                        bn_ref_buy[i],
                        bn_ref_sell[i],
                        kr_vol[i],
                        bn_vol[i],
                        kr_close,
                        bn_close,
                        vol_window,
                        trades,
                        ntr,
                        rej,
                        nrej,
                        xfer,
                        nx,
                    )
                else:
                    for o in range(MAX_ORDERS):
                        o_live[o] = False
                    t_kr, t_bn, base, px, nrej, nx = K.decide(
                        S, P, s, last_kr, last_bn, conv, t, i, rej, nrej, xfer, nx
                    )
                    for leg in range(2):
                        if (P[K.P_W_KR] if leg == 0 else P[K.P_W_BN]) == 0:
                            continue
                        dq = K.leg_order(S, P, leg, t_kr if leg == 0 else t_bn, px, base)
                        if dq == 0:
                            continue
                        if leg == 0:
                            mid = 0.5 * (kr_bid_px[j_kr, 0] + kr_ask_px[j_kr, 0]) if j_kr >= 0 else last_kr
                        else:
                            mid = 0.5 * (bn_bid_px[j_bn, 0] + bn_ask_px[j_bn, 0]) if j_bn >= 0 else last_bn
                        side = 1.0 if dq > 0 else -1.0
                        o = leg
                        o_live[o] = True
                        o_leg[o] = leg
                        o_rem[o] = dq
                        o_kind[o] = kind_cfg
                        o_limit[o] = np.nan if kind_cfg == O_MARKET else mid * (1.0 + side * offset)
                        o_active[o] = t + latency
                        o_expire[o] = t + latency + ttl
                        o_rested[o] = False
                        o_bar[o] = i
            equity[i] = K.mark(S, P, last_kr, last_bn, conv)
            pos_kr[i] = S[K.S_POS_KR]
            pos_bn[i] = S[K.S_POS_BN]
    liquidated = 0
    if book_mode and P[K.P_FLAT_DAY_END] != 0 and (S[K.S_POS_KR] != 0 or S[K.S_POS_BN] != 0):
        n = kr_close.shape[0]
        t_end = ev_t[ev_t.shape[0] - 1]
        for leg in range(2):
            dq = -(S[K.S_POS_KR] if leg == 0 else S[K.S_POS_BN])
            if dq == 0:
                continue
            liquidated += 1
            if leg == 0:
                ref = kr_ref_buy[n - 1] if dq > 0 else kr_ref_sell[n - 1]
                ntr = K.bar_fill(
                    S,
                    P,
                    0,
                    dq,
                    kr_close[n - 1],
                    ref,
                    K.impact_sigma(P, kr_close, n - 1, vol_window),
                    kr_vol[n - 1],
                    conv,
                    t_end,
                    n - 1,
                    trades,
                    ntr,
                )
            else:
                ref = bn_ref_buy[n - 1] if dq > 0 else bn_ref_sell[n - 1]
                ntr = K.bar_fill(
                    S,
                    P,
                    1,
                    dq,
                    bn_close[n - 1],
                    ref,
                    K.impact_sigma(P, bn_close, n - 1, vol_window),
                    bn_vol[n - 1],
                    conv,
                    t_end,
                    n - 1,
                    trades,
                    ntr,
                )
        equity[n - 1] = K.mark(S, P, kr_close[n - 1], bn_close[n - 1], conv)
        pos_kr[n - 1] = S[K.S_POS_KR]
        pos_bn[n - 1] = S[K.S_POS_BN]
    return ntr, nrej, nx, liquidated, last_bar


def build_events(market: Market, cfg: BacktestConfig, *, with_books: bool) -> tuple[np.ndarray, ...]:
    """All events of a run, sorted by (time, kind): arrays of time (µs), kind and index into its data."""
    close = market.ts_close
    n = market.n
    first_open, last_close = int(market.ts[0]), int(close[-1])
    times = [market.fx_ts[market.fx_ts <= last_close], close, close]
    kinds = [
        np.full(times[0].size, EV_FX, np.int8),
        np.full(n, EV_BAR, np.int8),
        np.full(n, EV_DECIDE, np.int8),
    ]
    idx = [np.flatnonzero(market.fx_ts <= last_close), np.arange(n), np.arange(n)]
    if with_books:
        for book, code in ((market.kr_book, EV_BOOK_KR), (market.bn_book, EV_BOOK_BN)):
            assert book is not None
            keep = np.flatnonzero(book.ts >= first_open)
            times.append(book.ts[keep])
            kinds.append(np.full(keep.size, code, np.int8))
            idx.append(keep)
    if cfg.hedge == "perp" and cfg.costs.funding.rate != 0:
        step = cfg.costs.funding.interval_s * US
        funding = np.arange((first_open // step + 1) * step, last_close + 1, step, dtype=np.int64)
        times.append(funding)
        kinds.append(np.full(funding.size, EV_FUNDING, np.int8))
        idx.append(np.zeros(funding.size, dtype=np.int64))
    t = np.concatenate(times).astype(np.int64)
    k = np.concatenate(kinds)
    i = np.concatenate(idx).astype(np.int64)
    order = np.lexsort((k, t))
    return t[order], k[order], i[order]


def run_event_driven(
    market: Market, signals: pl.DataFrame, config: BacktestConfig | None = None
) -> BacktestResult:
    """Backtest ``signals`` on ``market`` event by event (see the module docstring)."""
    cfg = config or BacktestConfig()
    has_books = market.kr_book is not None and market.bn_book is not None
    book_mode = cfg.fill == "book" and has_books
    n = market.n
    prep = prepare(market, signals, cfg, trade_capacity=(64 if book_mode else 2) * n + 64)
    if cfg.fill == "book" and not has_books:
        prep.notes.append("fill='book' but the market has no order books for both legs: bar-level fills used")
    ev_t, ev_kind, ev_i = build_events(market, cfg, with_books=has_books)
    kr_book = market.kr_book or Book.empty()
    bn_book = market.bn_book or Book.empty()
    equity, pos_kr, pos_bn = np.empty(n), np.empty(n), np.empty(n)
    ntr, nrej, nx, liquidated, _ = run_events(
        ev_t,
        ev_kind,
        ev_i,
        book_mode,
        np.int64(market.ts[0]),
        market.kr_close,
        market.bn_close,
        market.fx_rate,
        float(market.conv[0]),
        prep.target,
        market.tradable,
        market.day_end if cfg.flat_at_day_end else np.zeros(n, dtype=np.bool_),
        prep.kr_ref_buy,
        prep.kr_ref_sell,
        prep.bn_ref_buy,
        prep.bn_ref_sell,
        market.kr_volume,
        market.bn_volume,
        cfg.costs.impact.vol_window,
        kr_book.bid_px,
        kr_book.bid_sz,
        kr_book.ask_px,
        kr_book.ask_sz,
        bn_book.bid_px,
        bn_book.bid_sz,
        bn_book.ask_px,
        bn_book.ask_sz,
        prep.params,
        prep.state,
        prep.trades,
        prep.rejections,
        prep.transfers,
        equity,
        pos_kr,
        pos_bn,
    )
    if liquidated:
        prep.notes.append(
            f"{liquidated} leg(s) still open after the last snapshot were closed at the last bar close"
        )
    result = finish(
        "event_driven",
        market,
        cfg,
        prep,
        equity=equity,
        positions=(pos_kr, pos_bn),
        n_trades=ntr,
        n_rejections=nrej,
        n_transfers=nx,
    )
    result.metrics["events"] = float(ev_t.size)
    return result
