"""The event-driven engine: a time-ordered stream of events, orders with latency, fills against the book.

Events (sorted by time, then by kind in this order): FX updates (the conversion rate, at its
publication time), bar closes (marks), funding instants of a perp hedge, decisions (one per bar close),
then L10 order-book snapshots per leg. So at one instant the rate and the bar are updated before
anything acts on them, while a snapshot stamped at a decision's instant comes after the decision: it
sees the snapshots before its instant, and its orders (latency 0) can meet that one. A day's last
decision (at midnight) thus needs no data from the next day's partition, which is what lets a day run
from the previous day's closing state equal one run over both (kimp.backtest.carry). Transfers in
flight land at the first decision at or after their arrival time.

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
from kimp.backtest.carry import (
    OC_ACTIVE,
    OC_BAR_TS,
    OC_EXPIRE,
    OC_KIND,
    OC_LEG,
    OC_LIMIT,
    OC_REM,
    OC_RESTED,
    ORDER_COLS,
    ClosingState,
    closing_state,
)
from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import US, Book, Market
from kimp.backtest.result import BacktestResult, finish, prepare

EV_FX, EV_BAR, EV_FUNDING, EV_DECIDE, EV_BOOK_KR, EV_BOOK_BN = 0, 1, 2, 3, 4, 5  # the order at one instant
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
    last_kr0,
    last_bn0,
    mid_kr0,
    mid_bn0,
    orders,
    n_orders,
    target,
    tradable,
    day_end,
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
    """The event loop. A run that continues a closing state starts from its conversion rate, last
    closes, book mids (NaN: none seen) and the ``n_orders`` working orders in the rows of ``orders``
    (carry.OC_* columns; their fills are recorded at bar -1 - row); the impact window reads
    ``kr_hist``/``bn_hist`` (``hist`` carried closes before bar 0). On return ``orders`` holds the orders
    still working (bar column: the bar index they were sent at). Returns (fills, rejections,
    transfers, legs liquidated, last bar, working orders, conversion rate, Korean mid, Binance mid)."""
    ntr = 0
    nrej = 0
    nx = 0
    conv = conv0
    last_kr = last_kr0
    last_bn = last_bn0
    last_bar = 0
    seen_kr = mid_kr0 == mid_kr0  # a book mid is known (else the decision uses the last close)
    seen_bn = mid_bn0 == mid_bn0
    mid_kr = mid_kr0
    mid_bn = mid_bn0
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
    for o in range(n_orders):  # the orders a previous run left working
        o_live[o] = True
        o_leg[o] = np.int64(orders[o, OC_LEG])
        o_rem[o] = orders[o, OC_REM]
        o_limit[o] = orders[o, OC_LIMIT]
        o_active[o] = np.int64(orders[o, OC_ACTIVE])
        o_expire[o] = np.int64(orders[o, OC_EXPIRE])
        o_kind[o] = np.int64(orders[o, OC_KIND])
        o_rested[o] = orders[o, OC_RESTED] != 0
        o_bar[o] = -1 - o
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
                seen_kr = True
                mid_kr = 0.5 * (kr_bid_px[i, 0] + kr_ask_px[i, 0])
            else:
                seen_bn = True
                mid_bn = 0.5 * (bn_bid_px[i, 0] + bn_ask_px[i, 0])
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
                    ntr, nrej, nx = K.bar_decision_at(
                        S,
                        P,
                        i,
                        i + hist,
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
                        mid = mid_kr if seen_kr else last_kr
                        if leg == 1:
                            mid = mid_bn if seen_bn else last_bn
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
                    K.impact_sigma(P, kr_hist, n - 1 + hist, vol_window),
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
                    K.impact_sigma(P, bn_hist, n - 1 + hist, vol_window),
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
    working = 0
    if P[K.P_FLAT_DAY_END] == 0:  # flat at the day end: what is still working is cancelled with the day
        for o in range(MAX_ORDERS):
            if o_live[o]:
                orders[working, OC_LEG] = o_leg[o]
                orders[working, OC_REM] = o_rem[o]
                orders[working, OC_LIMIT] = o_limit[o]
                orders[working, OC_ACTIVE] = o_active[o]
                orders[working, OC_EXPIRE] = o_expire[o]
                orders[working, OC_KIND] = o_kind[o]
                orders[working, OC_RESTED] = 1.0 if o_rested[o] else 0.0
                orders[working, OC_BAR_TS] = o_bar[o]
                working += 1
    return (
        ntr,
        nrej,
        nx,
        liquidated,
        last_bar,
        working,
        conv,
        mid_kr if seen_kr else np.nan,
        mid_bn if seen_bn else np.nan,
    )


def build_events(
    market: Market, cfg: BacktestConfig, *, with_books: bool, funding_from: int | None = None
) -> tuple[np.ndarray, ...]:
    """All events of a run, sorted by (time, kind): arrays of time (µs), kind and index into its data.
    Funding instants are those after ``funding_from`` (default: the first bar's open)."""
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
        after = first_open if funding_from is None else funding_from
        funding = np.arange((after // step + 1) * step, last_close + 1, step, dtype=np.int64)
        times.append(funding)
        kinds.append(np.full(funding.size, EV_FUNDING, np.int8))
        idx.append(np.zeros(funding.size, dtype=np.int64))
    t = np.concatenate(times).astype(np.int64)
    k = np.concatenate(kinds)
    i = np.concatenate(idx).astype(np.int64)
    order = np.lexsort((k, t))
    return t[order], k[order], i[order]


def run_event_driven(
    market: Market,
    signals: pl.DataFrame,
    config: BacktestConfig | None = None,
    *,
    start: ClosingState | None = None,
) -> BacktestResult:
    """Backtest ``signals`` on ``market`` event by event (see the module docstring).

    ``start``: the closing state of the run over the bars before (``result.closing``) to continue
    from, working orders included; without it the run starts flat (kimp.backtest.carry)."""
    cfg = config or BacktestConfig()
    has_books = market.kr_book is not None and market.bn_book is not None
    book_mode = cfg.fill == "book" and has_books
    n = market.n
    prep = prepare(market, signals, cfg, trade_capacity=(64 if book_mode else 2) * n + 64, start=start)
    if cfg.fill == "book" and not has_books:
        prep.notes.append("fill='book' but the market has no order books for both legs: bar-level fills used")
    ev_t, ev_kind, ev_i = build_events(market, cfg, with_books=has_books, funding_from=prep.funding_from)
    kr_book = market.kr_book or Book.empty()
    bn_book = market.bn_book or Book.empty()
    equity, pos_kr, pos_bn = np.empty(n), np.empty(n), np.empty(n)
    orders = np.zeros((MAX_ORDERS, ORDER_COLS))
    carried = start.orders if start is not None else np.zeros((0, ORDER_COLS))
    if carried.shape[0] and not book_mode:
        raise ValueError(
            f"the closing state has {carried.shape[0]} working order(s): continue it with fill='book' on a "
            "market with order books for both legs"
        )
    orders[: carried.shape[0]] = carried
    ntr, nrej, nx, liquidated, _, working, conv, mid_kr, mid_bn = run_events(
        ev_t,
        ev_kind,
        ev_i,
        book_mode,
        np.int64(market.ts[0]),
        market.kr_close,
        market.bn_close,
        market.fx_rate,
        start.conv if start is not None else float(market.conv[0]),
        start.last_kr if start is not None else float(market.kr_close[0]),
        start.last_bn if start is not None else float(market.bn_close[0]),
        start.mid_kr if start is not None else np.nan,
        start.mid_bn if start is not None else np.nan,
        orders,
        carried.shape[0],
        prep.target,
        market.tradable,
        market.day_end if cfg.flat_at_day_end else np.zeros(n, dtype=np.bool_),
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
    # Bars of the carried orders' fills (record bar -1 - k: carried order k), and of the orders left
    # working (as bar open times, for the next run).
    prior_bar_ts = carried[:, OC_BAR_TS].astype(np.int64)
    left = orders[:working].copy()
    for row in left:
        bar = int(row[OC_BAR_TS])
        row[OC_BAR_TS] = market.ts[bar] if bar >= 0 else prior_bar_ts[-1 - bar]
    closing = closing_state(
        "event_driven",
        market,
        cfg.costs.impact.vol_window,
        prep.params,
        prep.state,
        start,
        equity=float(equity[-1]),
        conv=conv,
        mids=(mid_kr, mid_bn),
        orders=left,
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
        closing=closing,
        prior_bar_ts=prior_bar_ts,
    )
    result.metrics["events"] = float(ev_t.size)
    return result
