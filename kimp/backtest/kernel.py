"""Portfolio accounting shared by both engines: one set of numba functions, so parity is by construction.

Both the vectorized engine (a loop over bars) and the event-driven engine (a loop over time-ordered
events) call exactly these functions to size a target, clip it to capital and inventory limits, start
coin transfers, price a bar-level fill with the slippage and impact models, book a fill, charge funding
and mark the equity. Everything is ``@njit(cache=True, nogil=True)``: cached so a fresh process does not
recompile, GIL-free so parameter sweeps run in threads on every core. The per-bar functions are also
``inline="always"``: a real call would pay numba's reference counting on every array argument, which
made a bar ~10x slower.

State vector ``S`` (float64) and parameter vector ``P`` (see :meth:`BacktestConfig.params`) are flat
arrays indexed by the constants below; legs are 0 = Korean venue (KRW), 1 = Binance (USDT). Positions
are coins; cash is the change of the venue's quote balance since the start (fees and funding included).
Times are integer microseconds since the epoch (bar close for bar events).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# --- parameter vector -------------------------------------------------------------------------------
P_CAP_KRW, P_CAP_USDT, P_CAP_TOTAL, P_MAX_FRAC, P_INV_FRAC, P_REBAL = 0, 1, 2, 3, 4, 5
P_W_KR, P_W_BN, P_PERP = 6, 7, 8
P_FEE_KR_MAKER, P_FEE_KR_TAKER, P_FEE_BN_MAKER, P_FEE_BN_TAKER = 9, 10, 11, 12
P_SLIP_KIND, P_SLIP_FIXED, P_SLIP_COEF, P_IMPACT_COEF = 13, 14, 15, 16
P_FX_COST, P_FUNDING_RATE, P_FUNDING_US, P_TRANSFER_US, P_TRANSFER_FEE = 17, 18, 19, 20, 21
P_LATENCY_US, P_ORDER_TYPE, P_LIMIT_OFFSET, P_LIMIT_TTL_US, P_FLAT_DAY_END = 22, 23, 24, 25, 26
N_PARAMS = 27

# --- state vector -----------------------------------------------------------------------------------
S_POS_KR, S_POS_BN, S_CASH_KR, S_CASH_BN = 0, 1, 2, 3
S_TIN_KR, S_TIN_BN = 4, 5  # net coins moved onto the venue by transfers (negative: moved away)
S_FLIGHT_QTY, S_FLIGHT_DEST, S_FLIGHT_DUE = 6, 7, 8
S_INV0_KR, S_INV0_BN, S_LAST_TARGET = 9, 10, 11
C_FEES, C_SLIPPAGE, C_IMPACT, C_FUNDING, C_TRANSFER = 12, 13, 14, 15, 16
S_NOTIONAL, S_UNFILLED = 17, 18
N_STATE = 20
COST_SLOTS = {"fees": C_FEES, "slippage": C_SLIPPAGE, "impact": C_IMPACT, "funding": C_FUNDING}

# --- record buffers: trades (time, bar, leg, qty, price, fee, slippage, impact, conv, maker) ----------
TRADE_COLS = 10
REJECT_COLS = 5  # time, bar, requested target, allowed target, reason (1 capital/position, 2 inventory)
TRANSFER_COLS = 6  # time, bar, destination leg, qty sent, fee (coins), arrival time
REASON_CAPITAL, REASON_INVENTORY = 1, 2


@njit(cache=True, nogil=True)
def init_state(P, kr_px0, bn_px0):
    """Fresh state: flat, with the standing coin inventory each venue starts with."""
    S = np.zeros(N_STATE)
    S[S_INV0_KR] = P[P_INV_FRAC] * P[P_CAP_KRW] / kr_px0 if kr_px0 > 0 else 0.0
    S[S_INV0_BN] = P[P_INV_FRAC] * P[P_CAP_USDT] / bn_px0 if bn_px0 > 0 else 0.0
    S[S_LAST_TARGET] = np.nan
    return S


@njit(cache=True, nogil=True, inline="always")
def smaller(a, b):
    """``min(a, b)`` with numba's exact semantics (``b if b < a else a``), always inlined: the builtin
    two-argument ``min`` compiles to a real call, which on the per-bar path cost more than the rest."""
    return b if b < a else a


@njit(cache=True, nogil=True, inline="always")
def bar_return(prev_px, px):
    """Simple 1-bar return (0 after a non-positive price)."""
    return px / prev_px - 1.0 if prev_px > 0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def window_sigma(close, i, window):
    """Sample std of the simple 1-bar returns of the last ``window`` bars ending at bar ``i`` (bars
    ``i - window + 1 .. i``, bar 0 having no return; only the past), 0 with fewer than two returns.

    Computed where a fill needs it (a decision with the impact model on), from the window itself, in one
    pass over the returns' deviations from the window's first return (the shifted-data sums: no
    cancellation when the mean is large against the spread). Simple rather than log returns: the same to
    first order at bar scale, and no ``log``. NumPy's error model (``bar_return`` guards the only
    division that could be by 0).

    The sums run in four explicit lanes combined in a fixed order, never in an order the compiler picks
    (no ``fastmath`` reassociation): this function is inlined into both engines and compiled once per
    argument types, and each copy must give the same bits, whatever the CPU, the copy or whether it came
    from numba's on-disk cache (issue 11: results changed once the cache was warm).
    """
    m = smaller(i, window)
    if m < 2:
        return 0.0
    lo = i - m + 1
    shift = bar_return(close[lo - 1], close[lo])
    a1 = b1 = c1 = d1 = 0.0
    a2 = b2 = c2 = d2 = 0.0
    j = lo
    while j + 4 <= i + 1:
        xa = bar_return(close[j - 1], close[j]) - shift
        xb = bar_return(close[j], close[j + 1]) - shift
        xc = bar_return(close[j + 1], close[j + 2]) - shift
        xd = bar_return(close[j + 2], close[j + 3]) - shift
        a1 += xa
        b1 += xb
        c1 += xc
        d1 += xd
        a2 += xa * xa
        b2 += xb * xb
        c2 += xc * xc
        d2 += xd * xd
        j += 4
    while j <= i:
        x = bar_return(close[j - 1], close[j]) - shift
        a1 += x
        a2 += x * x
        j += 1
    s1 = (a1 + b1) + (c1 + d1)
    s2 = (a2 + b2) + (c2 + d2)
    var = (s2 - s1 * s1 / m) / (m - 1)
    return math.sqrt(var) if var > 0 else 0.0


@njit(cache=True, nogil=True, inline="always")
def impact_sigma(P, close, i, window):
    """The impact model's volatility of a leg at bar ``i`` (:func:`window_sigma`); 0 when impact is off."""
    return window_sigma(close, i, window) if P[P_IMPACT_COEF] > 0 else 0.0


@njit(cache=True, nogil=True, inline="always")
def land_transfer(S, t):
    """Coins in flight reach their venue once their arrival time has passed."""
    if S[S_FLIGHT_QTY] > 0 and S[S_FLIGHT_DUE] <= t:
        dest = S_TIN_KR if S[S_FLIGHT_DEST] == 0 else S_TIN_BN
        S[dest] += S[S_FLIGHT_QTY]
        S[S_FLIGHT_QTY] = 0.0


@njit(cache=True, nogil=True, inline="always")
def charge_funding(S, P, bn_px, conv, periods):
    """Perp funding for ``periods`` funding instants: a long pays rate x notional, a short receives it."""
    amount = periods * P[P_FUNDING_RATE] * S[S_POS_BN] * bn_px
    S[S_CASH_BN] -= amount
    S[C_FUNDING] += amount * conv


@njit(cache=True, nogil=True, inline="always")
def decide(S, P, s, kr_px, bn_px, conv, t, bar, rej, nrej, xfer, nxfer):
    """Leg targets (coins) for the target ``s``; clips to limits, records rejections, starts transfers.

    Returns (target_kr, target_bn, base_krw, primary_px_krw, nrej, nxfer).
    """
    wk = P[P_W_KR]
    wb = P[P_W_BN]
    if wk != 0 and wb != 0:
        base = min(P[P_CAP_KRW], P[P_CAP_USDT] * conv)
    elif wk != 0:
        base = P[P_CAP_KRW]
    else:
        base = P[P_CAP_USDT] * conv
    px = kr_px if wk != 0 else bn_px * conv
    sign = 1.0 if s > 0 else (-1.0 if s < 0 else 0.0)
    q_req = abs(s) * base / px
    q = q_req
    reason = 0
    if wk != 0 and q > P[P_MAX_FRAC] * P[P_CAP_KRW] / kr_px:
        q = P[P_MAX_FRAC] * P[P_CAP_KRW] / kr_px
        reason = REASON_CAPITAL
    if wb != 0 and q > P[P_MAX_FRAC] * P[P_CAP_USDT] / bn_px:
        q = P[P_MAX_FRAC] * P[P_CAP_USDT] / bn_px
        reason = REASON_CAPITAL
    short_leg = -1
    shortfall = 0.0
    avail_kr = S[S_INV0_KR] + S[S_TIN_KR]
    avail_bn = S[S_INV0_BN] + S[S_TIN_BN]
    if wk * sign < 0 and q > avail_kr:
        shortfall = q - max(avail_kr, 0.0)
        q = max(avail_kr, 0.0)
        short_leg = 0
        reason = REASON_INVENTORY
    if wb * sign < 0 and P[P_PERP] == 0 and q > avail_bn:
        shortfall = q - max(avail_bn, 0.0)
        q = max(avail_bn, 0.0)
        short_leg = 1
        reason = REASON_INVENTORY
    allowed = sign * q * px / base if base > 0 else 0.0
    if reason != 0 and s != S[S_LAST_TARGET]:
        if nrej < rej.shape[0]:  # counted either way: a caller sees that its buffer was too small
            rej[nrej, 0] = t
            rej[nrej, 1] = bar
            rej[nrej, 2] = s
            rej[nrej, 3] = allowed
            rej[nrej, 4] = reason
        nrej += 1
    S[S_LAST_TARGET] = s
    t_kr = wk * sign * q
    t_bn = wb * sign * q
    if short_leg >= 0 and S[S_FLIGHT_QTY] == 0:
        # Withdraw the shortfall from the other venue's holdings left after its own target.
        if short_leg == 0:
            source_left = S[S_INV0_BN] + t_bn + S[S_TIN_BN]
        else:
            source_left = S[S_INV0_KR] + t_kr + S[S_TIN_KR]
        x = min(shortfall, source_left)
        fee = P[P_TRANSFER_FEE]
        if x > fee and x > 0:
            if short_leg == 0:
                S[S_TIN_BN] -= x
            else:
                S[S_TIN_KR] -= x
            S[S_FLIGHT_QTY] = x - fee
            S[S_FLIGHT_DEST] = short_leg
            S[S_FLIGHT_DUE] = t + P[P_TRANSFER_US]
            S[C_TRANSFER] += fee * bn_px * conv
            if nxfer < xfer.shape[0]:
                xfer[nxfer, 0] = t
                xfer[nxfer, 1] = bar
                xfer[nxfer, 2] = short_leg
                xfer[nxfer, 3] = x
                xfer[nxfer, 4] = fee
                xfer[nxfer, 5] = S[S_FLIGHT_DUE]
            nxfer += 1
    return t_kr, t_bn, base, px, nrej, nxfer


@njit(cache=True, nogil=True, inline="always")
def quiet(S, P, s, kr_px, bn_px, conv):
    """True when :func:`decide` + :func:`leg_order` would do nothing: same target as last time, no
    inventory cut (so no transfer to start) and both legs within the rebalance threshold."""
    return quiet_at(
        S[S_LAST_TARGET],
        S[S_POS_KR],
        S[S_POS_BN],
        S[S_INV0_KR] + S[S_TIN_KR],
        S[S_INV0_BN] + S[S_TIN_BN],
        P[P_W_KR],
        P[P_W_BN],
        P[P_CAP_KRW],
        P[P_CAP_USDT],
        P[P_MAX_FRAC],
        P[P_PERP],
        P[P_REBAL],
        s,
        kr_px,
        bn_px,
        conv,
    )


@njit(cache=True, nogil=True, inline="always")
def quiet_at(
    last_target,
    pos_kr,
    pos_bn,
    avail_kr,
    avail_bn,
    wk,
    wb,
    cap_krw,
    cap_usdt,
    max_frac,
    perp,
    rebal,
    s,
    kr_px,
    bn_px,
    conv,
):
    """:func:`quiet` on scalars (state and parameter values, ``avail_*`` = standing inventory + net
    transfers), so that the vectorized engine's scan passes no arrays.

    Scalars only and straight-line arithmetic on purpose: the vectorized engine evaluates it on blocks
    of bars at once (several bars per instruction), which needs a body without branches; and numba
    reference-counts every array an inlined function receives. A target of 0 needs no special case:
    its size is 0, so this reduces to "was flat, is flat" (``last_target == 0`` and both legs at 0).
    Both choices below (``base``, the KRW-priced leg) are selects between values computed either way.
    """
    has_kr = wk != 0
    has_bn = wb != 0
    cap_bn = cap_usdt * conv
    base = smaller(cap_krw, cap_bn) * (has_kr & has_bn) + cap_krw * (has_kr & ~has_bn) + cap_bn * ~has_kr
    px = kr_px * has_kr + bn_px * conv * ~has_kr
    sign = (s > 0) * 1.0 - (s < 0) * 1.0
    # Multiplications by precomputed reciprocals instead of divisions: this is the hot path.
    inv_kr = 1.0 / kr_px
    inv_bn = 1.0 / bn_px
    per_coin = inv_bn / conv  # KRW per coin of the Binance leg, inverted: for a run without Korean leg
    q = abs(s) * base * (inv_kr if has_kr else per_coin)
    q = smaller(q, max_frac * cap_krw * inv_kr + 1e300 * ~has_kr)
    q = smaller(q, max_frac * cap_usdt * inv_bn + 1e300 * ~has_bn)
    inv_cut = ((wk * sign < 0) & (q > avail_kr)) | ((wb * sign < 0) & (perp == 0) & (q > avail_bn))
    band = rebal * base
    d_kr = wk * sign * q - pos_kr
    d_bn = wb * sign * q - pos_bn
    kr_ok = (d_kr == 0) | ((q * wk != 0) & (abs(d_kr) * px < band))
    bn_ok = (d_bn == 0) | ((q * wb != 0) & (abs(d_bn) * px < band))
    return (s == last_target) & ~inv_cut & kr_ok & bn_ok


@njit(cache=True, nogil=True, inline="always")
def leg_order(S, P, leg, target, px_krw, base):
    """Coins to trade on a leg: the gap to its target, unless below the rebalance threshold (no churn)."""
    pos = S[S_POS_KR] if leg == 0 else S[S_POS_BN]
    dq = target - pos
    if dq == 0:
        return 0.0
    if target == 0:
        return dq  # closing always goes through
    if abs(dq) * px_krw < P[P_REBAL] * base:
        return 0.0
    return dq


@njit(cache=True, nogil=True, inline="always")
def apply_fill(S, P, leg, dq, price, maker, slip_native, impact_native, conv):
    """Book a fill of ``dq`` coins (signed) at ``price``: position, cash, fee and cost accumulators."""
    if leg == 0:
        rate = P[P_FEE_KR_MAKER] if maker else P[P_FEE_KR_TAKER]
        k = 1.0
    else:
        rate = P[P_FEE_BN_MAKER] if maker else P[P_FEE_BN_TAKER]
        k = conv
    notional = abs(dq) * price
    fee = notional * rate
    if leg == 0:
        S[S_POS_KR] += dq
        S[S_CASH_KR] -= dq * price + fee
    else:
        S[S_POS_BN] += dq
        S[S_CASH_BN] -= dq * price + fee
    S[C_FEES] += fee * k
    S[C_SLIPPAGE] += slip_native * k
    S[C_IMPACT] += impact_native * k
    S[S_NOTIONAL] += notional * k
    return fee


@njit(cache=True, nogil=True, inline="always")
def record_trade(buf, n, t, bar, leg, dq, price, fee, slip, impact, conv, maker):
    if n < buf.shape[0]:
        buf[n, 0] = t
        buf[n, 1] = bar
        buf[n, 2] = leg
        buf[n, 3] = dq
        buf[n, 4] = price
        buf[n, 5] = fee
        buf[n, 6] = slip
        buf[n, 7] = impact
        buf[n, 8] = conv
        buf[n, 9] = 1.0 if maker else 0.0
    return n + 1


@njit(cache=True, nogil=True, inline="always")
def bar_fill(S, P, leg, dq, ref_px, ref_size, sigma, volume, conv, t, bar, trades, ntr):
    """A taker fill at the bar close moved by the slippage and impact models (bar-level fills)."""
    side = 1.0 if dq > 0 else -1.0
    qa = abs(dq)
    slip = P[P_SLIP_FIXED]
    kind = P[P_SLIP_KIND]
    if ref_size > 0:
        if kind == 2:
            slip += P[P_SLIP_COEF] * qa / ref_size
        elif kind == 3:
            slip += P[P_SLIP_COEF] * math.sqrt(qa / ref_size)
    imp = 0.0
    if P[P_IMPACT_COEF] > 0 and volume > 0 and sigma > 0:
        imp = P[P_IMPACT_COEF] * sigma * math.sqrt(qa / volume)
    price = ref_px * (1.0 + side * (slip + imp))
    slip_native = qa * ref_px * slip
    imp_native = qa * ref_px * imp
    fee = apply_fill(S, P, leg, dq, price, False, slip_native, imp_native, conv)
    return record_trade(trades, ntr, t, bar, leg, dq, price, fee, slip_native, imp_native, conv, False)


@njit(cache=True, nogil=True, inline="always")
def mark(S, P, kr_px, bn_px, conv):
    """Equity in KRW: capital + both legs' PnL (Binance leg converted, less its conversion cost)."""
    return mark_at(
        P[P_CAP_TOTAL],
        P[P_FX_COST],
        S[S_CASH_KR],
        S[S_POS_KR],
        S[S_CASH_BN],
        S[S_POS_BN],
        S[C_TRANSFER],
        kr_px,
        bn_px,
        conv,
    )


@njit(cache=True, nogil=True, inline="always")
def mark_at(cap_total, fx_cost, cash_kr, pos_kr, cash_bn, pos_bn, transfer_cost, kr_px, bn_px, conv):
    """:func:`mark` on scalars (see :func:`quiet_at` for why)."""
    pnl_kr = cash_kr + pos_kr * kr_px
    pnl_bn = cash_bn + pos_bn * bn_px
    return cap_total + pnl_kr + pnl_bn * conv - fx_cost * abs(pnl_bn) * conv - transfer_cost


@njit(cache=True, nogil=True, inline="always")
def bar_decision(
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
    kr_close,
    bn_close,
    vol_window,
    trades,
    ntr,
    rej,
    nrej,
    xfer,
    nxfer,
):
    """:func:`bar_decision_at` of a run whose close arrays start at its bar 0 (no carried history)."""
    return bar_decision_at(
        S,
        P,
        i,
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
        kr_close,
        bn_close,
        vol_window,
        trades,
        ntr,
        rej,
        nrej,
        xfer,
        nxfer,
    )


@njit(cache=True, nogil=True, inline="always")
def bar_decision_at(
    S,
    P,
    i,
    w,
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
    kr_close,
    bn_close,
    vol_window,
    trades,
    ntr,
    rej,
    nrej,
    xfer,
    nxfer,
):
    """One decision with bar-level fills: target, clip, trade each leg at the bar close.

    The per-leg inputs are this bar's values: reference sizes for a buy and a sell (slippage model) and
    volumes (impact model); scalars, so that a caller passes few arrays. The closes are for the impact
    model's volatility (:func:`window_sigma`), computed only for a leg that trades; bar ``i`` is at
    index ``w`` of them (``w = i`` plus the bars of history a run continued from carries before its
    bar 0, so that a window reaching back across the start sees the bars a continuous run would).
    Callers test :func:`quiet` first: even an early return here would pay for its array arguments.
    """
    t_kr, t_bn, base, px, nrej, nxfer = decide(S, P, s, kr_px, bn_px, conv, t, i, rej, nrej, xfer, nxfer)
    if P[P_W_KR] != 0:
        dq = leg_order(S, P, 0, t_kr, px, base)
        if dq != 0:
            ref = kr_ref_buy if dq > 0 else kr_ref_sell
            sigma = impact_sigma(P, kr_close, w, vol_window)
            ntr = bar_fill(S, P, 0, dq, kr_px, ref, sigma, kr_vol, conv, t, i, trades, ntr)
    if P[P_W_BN] != 0:
        dq = leg_order(S, P, 1, t_bn, px, base)
        if dq != 0:
            ref = bn_ref_buy if dq > 0 else bn_ref_sell
            sigma = impact_sigma(P, bn_close, w, vol_window)
            ntr = bar_fill(S, P, 1, dq, bn_px, ref, sigma, bn_vol, conv, t, i, trades, ntr)
    return ntr, nrej, nxfer
