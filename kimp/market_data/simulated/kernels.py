"""Numba kernels for the recursive parts (regime chain, GARCH, AR/OU paths).

Random draws are made by numpy Generators outside and passed in, so that the kernels are pure
functions of their inputs: determinism and day-independence come from how the draws are seeded.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kimp.market_data.simulated.params import DISCOUNT, EUPHORIC


@njit(cache=True)
def anchor_core(
    trend_btc: np.ndarray,
    trend_eth: np.ndarray,
    trend_fx: np.ndarray,
    fx_vol: np.ndarray,
    vol_scale: np.ndarray,
    e_btc: np.ndarray,
    e_eth: np.ndarray,
    e_fx: np.ndarray,
    n_flow: np.ndarray,
    t_resid: np.ndarray,
    jump_u: np.ndarray,
    jump_t: np.ndarray,
    regime_u: np.ndarray,
    n_trans: np.ndarray,
    level: np.ndarray,
    resid_vol: np.ndarray,
    transient_sd: np.ndarray,
    flow_mean: np.ndarray,
    jump_prob: np.ndarray,
    jump_scale: np.ndarray,
    trans: np.ndarray,
    phi_price: float,
    omega: float,
    alpha: float,
    beta: float,
    h_cap: float,
    eth_ratio: float,
    phi_fx: float,
    flow_ar: float,
    glide: float,
    resid_ar: float,
    beta_fx: float,
    flow_beta: float,
    p_lo: float,
    p_hi: float,
    boost: float,
    window: int,
    regime0: int,
) -> tuple[np.ndarray, ...]:
    """The coupled daily chain. Shock arrays are indexed by day i (the move from anchor i to i+1);
    ``n_trans`` (the transient's anchor draws) has one entry per anchor; ``vol_scale`` scales day i's
    price shock (quieter weekends) without entering the GARCH recursion. Returns, per anchor:
    regime (of the day starting there), GARCH variance h, log BTC/ETH (USDT), log USD/KRW, flow F,
    premium level L, residual Z, transient T, and J, the premium jump that happens during day i."""
    n = e_btc.shape[0]
    regime = np.empty(n + 1, np.int64)
    h = np.empty(n + 1)
    x_btc = np.empty(n + 1)
    x_eth = np.empty(n + 1)
    f = np.empty(n + 1)
    flow = np.empty(n + 1)
    lvl = np.empty(n + 1)
    z = np.empty(n + 1)
    tr = np.empty(n + 1)
    jumps = np.zeros(n + 1)
    regime[0] = regime0
    h[0] = omega / (1.0 - alpha - beta)
    x_btc[0] = trend_btc[0]
    x_eth[0] = trend_eth[0]
    f[0] = trend_fx[0]
    flow[0] = flow_mean[regime0]
    lvl[0] = level[regime0]
    z[0] = 0.0
    tr[0] = transient_sd[regime0] * n_trans[0]
    flow_sd = math.sqrt(1.0 - flow_ar * flow_ar)
    k = level.shape[0]
    probs = np.empty(k)
    for i in range(n):
        r = regime[i]
        sd = math.sqrt(h[i]) * vol_scale[i]
        x_btc[i + 1] = trend_btc[i + 1] + phi_price * (x_btc[i] - trend_btc[i]) + sd * e_btc[i]
        x_eth[i + 1] = trend_eth[i + 1] + phi_price * (x_eth[i] - trend_eth[i]) + eth_ratio * sd * e_eth[i]
        h[i + 1] = min(omega + alpha * h[i] * e_btc[i] * e_btc[i] + beta * h[i], h_cap)
        f[i + 1] = trend_fx[i + 1] + phi_fx * (f[i] - trend_fx[i]) + fx_vol[i] * e_fx[i]
        dfx = f[i + 1] - f[i]
        flow[i + 1] = flow_mean[r] + flow_ar * (flow[i] - flow_mean[r]) + flow_sd * n_flow[i]
        lvl[i + 1] = lvl[i] + (1.0 - glide) * (level[r] - lvl[i])
        jump = 0.0
        if jump_u[i] < jump_prob[r]:
            jump = jump_scale[r] * jump_t[i]
        jumps[i] = jump
        zz = resid_ar * z[i] - beta_fx * dfx + resid_vol[r] * t_resid[i] + jump
        slow = lvl[i + 1] + flow_beta * flow[i + 1] + zz
        if slow > p_hi:
            zz -= slow - p_hi
        elif slow < p_lo:
            zz += p_lo - slow
        z[i + 1] = zz
        # Regime of day i+1: Markov step whose moves into euphoria (out of it, into discount) are
        # scaled by the recent BTC rally (sell-off).
        j0 = i + 1 - window
        if j0 < 0:
            j0 = 0
        mom = x_btc[i + 1] - x_btc[j0]
        up = min(max(mom, 0.0), 1.0)
        down = min(max(-mom, 0.0), 1.0)
        off = 0.0
        for c in range(k):
            p = trans[r, c]
            if c != r:
                if c == EUPHORIC:
                    p *= math.exp(boost * up)
                elif c == DISCOUNT:
                    p *= math.exp(boost * down)
                if r == EUPHORIC:
                    p *= math.exp(boost * down)
                off += p
            probs[c] = p
        if off > 0.5:
            for c in range(k):
                if c != r:
                    probs[c] *= 0.5 / off
            off = 0.5
        probs[r] = 1.0 - off
        u = regime_u[i]
        nxt = k - 1
        acc = 0.0
        for c in range(k):
            acc += probs[c]
            if u < acc:
                nxt = c
                break
        regime[i + 1] = nxt
        tr[i + 1] = transient_sd[nxt] * n_trans[i + 1]
    return regime, h, x_btc, x_eth, f, flow, lvl, z, tr, jumps


@njit(cache=True)
def ou_daily(
    mean: np.ndarray, phi: float, scale: np.ndarray, eps: np.ndarray, x0: float, active: np.ndarray
) -> np.ndarray:
    """x[i+1] = mean[i+1] + phi (x[i] - mean[i]) + scale[i] eps[i] on active days; held otherwise
    (markets closed at weekends keep their last close)."""
    n = eps.shape[0]
    x = np.empty(n + 1)
    x[0] = x0
    for i in range(n):
        if active[i]:
            x[i + 1] = mean[i + 1] + phi * (x[i] - mean[i]) + scale[i] * eps[i]
        else:
            x[i + 1] = x[i]
    return x


@njit(cache=True)
def ema(x: np.ndarray, a: float) -> np.ndarray:
    """Exponential moving average y[i] = a y[i-1] + (1 - a) x[i], y[0] = x[0]."""
    y = np.empty_like(x)
    y[0] = x[0]
    for i in range(1, x.shape[0]):
        y[i] = a * y[i - 1] + (1.0 - a) * x[i]
    return y


@njit(cache=True)
def forced_ar(x0: float, a: float, s: np.ndarray, eps: np.ndarray, g: np.ndarray) -> np.ndarray:
    """x[m+1] = a x[m] + s[m] eps[m] + g[m], x[0] = x0: an exact-discretised OU (a = exp(-k dt)) with
    time-varying shock scale and an additive forcing (FX pass-through, jumps)."""
    n = eps.shape[0]
    x = np.empty(n + 1)
    x[0] = x0
    for m in range(n):
        x[m + 1] = a * x[m] + s[m] * eps[m] + g[m]
    return x


@njit(cache=True)
def ar1_unit(eps: np.ndarray, a: float) -> np.ndarray:
    """Stationary unit-variance AR(1) driven by ``eps`` (starts in its stationary distribution)."""
    n = eps.shape[0]
    x = np.empty(n)
    if n == 0:
        return x
    x[0] = eps[0]
    c = math.sqrt(1.0 - a * a)
    for m in range(1, n):
        x[m] = a * x[m - 1] + c * eps[m]
    return x
