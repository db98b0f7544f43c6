"""The environment's accounting: the backtest's per-bar rule, one bar at a time, in numba.

A bar of the vectorized engine (:func:`kimp.backtest.vectorized.decide_bars`) is: coins in flight land,
perp funding is charged at its instants, then the decision at the bar close (forced flat at the last bar
of a UTC day and of the run) is sized, clipped to capital and inventory, starts transfers and fills both
legs with the slippage and impact models; the equity is marked at the close. The vectorized engine
skips the bars where nothing happens; here every bar is visited, because an agent decides at every bar.
Both call the same kernel functions (:mod:`kimp.backtest.kernel`) with the same parameter vector, so an
episode driven by a sequence of targets books exactly the fills, costs and equity that
``run_vectorized`` books for those targets (tests/test_rl_env.py checks it bit for bit).

A bar is split in two so that the reward of a decision includes what follows it: :func:`open_bar` (land,
fund, mark the pre-decision equity ``E_t``, day and peak bookkeeping) and :func:`decide_bar` (kill
switch, the decision, the post-decision mark). :func:`step` = decide bar t, open bar t+1, reward, next
observation. Everything lives in flat arrays (the backtest's state vector ``S`` and parameters ``P``,
the environment's state ``R`` and parameters ``Q``) so that a step is one call with few arguments.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kimp.backtest import kernel as K
from kimp.backtest.market import DAY_US

# --- per-bar inputs: rows of the episode's (NB, n) matrix (each row a C-contiguous array) -------------
B_KR, B_BN, B_CONV, B_KR_BUY, B_KR_SELL, B_BN_BUY, B_BN_SELL, B_KR_VOL, B_BN_VOL = range(9)
NB = 9

# --- environment parameters Q --------------------------------------------------------------------
Q_INTERVAL_US, Q_FLAT_DAY_END, Q_VOL_WINDOW, Q_ACTION_KIND, Q_STEP, Q_LEVELS = 0, 1, 2, 3, 4, 5
Q_SCALE, Q_DSR_W, Q_DSR_ETA, Q_DSR_MIN_VAR, Q_DSR_CLIP, Q_TURNOVER = 6, 7, 8, 9, 10, 11
Q_MAX_DAY_LOSS, Q_MAX_DD, Q_OBS_CLIP = 12, 13, 14
N_Q = 16
ACTION_CONTINUOUS, ACTION_DISCRETE = 0, 1

# --- environment state R -------------------------------------------------------------------------
R_BAR, R_E_PRE, R_E_POST, R_A, R_B, R_PEAK, R_DAY, R_DAY_START = 0, 1, 2, 3, 4, 5, 6, 7
R_HALT_DAY, R_HALT_DD, R_NOTIONAL, R_NEXT_FUNDING, R_TARGET, R_DONE = 8, 9, 10, 11, 12, 13
R_NTR, R_NREJ, R_NX, R_NKILL, R_LAST_R, R_LAST_DSR = 14, 15, 16, 17, 18, 19
N_R = 24

# --- kill-switch records: bar, reason, equity ----------------------------------------------------
KILL_COLS = 3
KILL_DAILY_LOSS, KILL_DRAWDOWN = 1, 2
N_DYNAMIC = 4  # position, target, halted, episode_pnl (observation.DYNAMIC)


@njit(cache=True, nogil=True)
def reset(ts, bars, P, S, R, Q):
    """A fresh episode at bar 0: flat state, standing inventory, first pre-decision mark."""
    S[:] = K.init_state(P, bars[B_KR, 0], bars[B_BN, 0])
    R[:] = 0.0
    R[R_E_POST] = P[K.P_CAP_TOTAL]  # "the previous close" of the first bar: the starting capital
    R[R_DAY] = -1.0
    R[R_PEAK] = -np.inf
    funding_us = np.int64(P[K.P_FUNDING_US])
    perp = P[K.P_PERP] != 0 and P[K.P_FUNDING_RATE] != 0
    # Funding instants in (first open, ...], as in the vectorized engine.
    R[R_NEXT_FUNDING] = (ts[0] // funding_us + 1) * funding_us if perp else np.inf
    open_bar(0, ts, bars, P, S, R, Q)


@njit(cache=True, nogil=True)
def open_bar(i, ts, bars, P, S, R, Q):
    """Bar ``i`` up to its decision: transfers land, funding is charged, the equity is marked at the
    close (``R_E_PRE``); a new UTC day resets the daily-loss reference and lifts a daily halt."""
    t = ts[i] + np.int64(Q[Q_INTERVAL_US])
    R[R_BAR] = i
    if S[K.S_FLIGHT_QTY] > 0 and S[K.S_FLIGHT_DUE] <= t:
        K.land_transfer(S, t)
    if t >= R[R_NEXT_FUNDING]:
        funding_us = np.int64(P[K.P_FUNDING_US])
        nxt = np.int64(R[R_NEXT_FUNDING])
        k = (t - nxt) // funding_us + 1
        R[R_NEXT_FUNDING] = nxt + k * funding_us
        if S[K.S_POS_BN] != 0:
            K.charge_funding(S, P, bars[B_BN, i], bars[B_CONV, i], k)
    day = ts[i] // DAY_US
    if day != R[R_DAY]:
        R[R_DAY] = day
        R[R_DAY_START] = R[R_E_POST]
        R[R_HALT_DAY] = 0.0
    e = K.mark(S, P, bars[B_KR, i], bars[B_BN, i], bars[B_CONV, i])
    R[R_E_PRE] = e
    if e > R[R_PEAK]:
        R[R_PEAK] = e


@njit(cache=True, nogil=True)
def decide_bar(i, s, ts, tradable, bars, P, S, R, Q, trades, rej, xfer, kills, equity, targets):
    """The decision at bar ``i``'s close with target ``s``: the kill switch first (on ``R_E_PRE``), the
    day-end close-out, then the backtest's decision and fills; the equity is marked after them."""
    n = ts.shape[0]
    e = R[R_E_PRE]
    if R[R_HALT_DAY] == 0 and R[R_HALT_DD] == 0:
        reason = 0
        if Q[Q_MAX_DAY_LOSS] > 0 and e < R[R_DAY_START] * (1.0 - Q[Q_MAX_DAY_LOSS]):
            R[R_HALT_DAY] = 1.0
            reason = KILL_DAILY_LOSS
        if Q[Q_MAX_DD] > 0 and e < R[R_PEAK] * (1.0 - Q[Q_MAX_DD]):
            R[R_HALT_DD] = 1.0
            reason = KILL_DRAWDOWN
        if reason != 0:
            k = np.int64(R[R_NKILL])
            if k < kills.shape[0]:
                kills[k, 0] = i
                kills[k, 1] = reason
                kills[k, 2] = e
            R[R_NKILL] = k + 1
    if R[R_HALT_DAY] != 0 or R[R_HALT_DD] != 0:
        s = 0.0
    forced = Q[Q_FLAT_DAY_END] != 0 and (i + 1 == n or ts[i + 1] // DAY_US != ts[i] // DAY_US)
    if forced:
        s = 0.0
    targets[i] = s
    R[R_TARGET] = s
    kr = bars[B_KR, i]
    bn = bars[B_BN, i]
    conv = bars[B_CONV, i]
    if (tradable[i] or forced) and not K.quiet(S, P, s, kr, bn, conv):
        ntr, nrej, nx = K.bar_decision(
            S,
            P,
            i,
            ts[i] + np.int64(Q[Q_INTERVAL_US]),
            s,
            kr,
            bn,
            conv,
            bars[B_KR_BUY, i],
            bars[B_KR_SELL, i],
            bars[B_BN_BUY, i],
            bars[B_BN_SELL, i],
            bars[B_KR_VOL, i],
            bars[B_BN_VOL, i],
            bars[B_KR],
            bars[B_BN],
            np.int64(Q[Q_VOL_WINDOW]),
            trades,
            np.int64(R[R_NTR]),
            rej,
            np.int64(R[R_NREJ]),
            xfer,
            np.int64(R[R_NX]),
        )
        R[R_NTR] = ntr
        R[R_NREJ] = nrej
        R[R_NX] = nx
    e_post = K.mark(S, P, kr, bn, conv)
    equity[i] = e_post
    R[R_E_POST] = e_post


@njit(cache=True, nogil=True)
def target_of(action, R, Q):
    """The target an action asks for. Continuous: the action itself, cut to [-1, 1]. Discrete: 0 =
    hold (keep the current target), 1..k = buy 1..k steps, k+1..2k = sell 1..k steps, cut to [-1, 1]."""
    if Q[Q_ACTION_KIND] == ACTION_CONTINUOUS:
        a = action if action == action else 0.0
        return -1.0 if a < -1.0 else (1.0 if a > 1.0 else a)
    k = np.int64(action)
    levels = np.int64(Q[Q_LEVELS])
    s = R[R_TARGET]
    if 1 <= k <= levels:
        s += k * Q[Q_STEP]
    elif levels < k <= 2 * levels:
        s -= (k - levels) * Q[Q_STEP]
    return -1.0 if s < -1.0 else (1.0 if s > 1.0 else s)


@njit(cache=True, nogil=True)
def differential_sharpe(r, R, Q):
    """Moody and Saffell's differential Sharpe ratio of return ``r``; updates the moments A, B."""
    a = R[R_A]
    b = R[R_B]
    eta = Q[Q_DSR_ETA]
    var = b - a * a
    var = var if var > Q[Q_DSR_MIN_VAR] else Q[Q_DSR_MIN_VAR]
    d = (b * (r - a) - 0.5 * a * (r * r - b)) / (var * math.sqrt(var))
    c = Q[Q_DSR_CLIP]
    d = -c if d < -c else (c if d > c else d)
    R[R_A] = a + eta * (r - a)
    R[R_B] = b + eta * (r * r - b)
    return d


@njit(cache=True, nogil=True)
def observe(i, feats, bars, P, S, R, Q, obs):
    """Row ``i`` of the static features, then position (primary leg, in target units), target, halted
    and the episode's PnL in percent of capital."""
    f = feats.shape[1]
    for j in range(f):
        obs[j] = feats[i, j]
    kr = bars[B_KR, i]
    bn = bars[B_BN, i]
    conv = bars[B_CONV, i]
    wk = P[K.P_W_KR]
    wb = P[K.P_W_BN]
    if wk != 0 and wb != 0:
        base = min(P[K.P_CAP_KRW], P[K.P_CAP_USDT] * conv)
    elif wk != 0:
        base = P[K.P_CAP_KRW]
    else:
        base = P[K.P_CAP_USDT] * conv
    held = wk * S[K.S_POS_KR] * kr if wk != 0 else wb * S[K.S_POS_BN] * bn * conv
    obs[f] = held / base
    obs[f + 1] = R[R_TARGET]
    obs[f + 2] = 1.0 if (R[R_HALT_DAY] != 0 or R[R_HALT_DD] != 0) else 0.0
    c = Q[Q_OBS_CLIP]
    pnl = 100.0 * (R[R_E_PRE] / P[K.P_CAP_TOTAL] - 1.0)
    obs[f + 3] = -c if pnl < -c else (c if pnl > c else pnl)


@njit(cache=True, nogil=True)
def step(action, ts, tradable, bars, feats, P, S, R, Q, trades, rej, xfer, kills, equity, targets, obs):
    """One environment step: decide the current bar with ``action``, open the next bar, write its
    observation into ``obs``. Returns (reward, terminated).

    reward = scale x r + w x D(r) - penalty x scale x traded notional / capital, with
    r = (E_{t+1} - E_t) / capital (pre-decision marks; at the last bar the final post-decision mark)."""
    i = np.int64(R[R_BAR])
    n = ts.shape[0]
    s = target_of(action, R, Q)
    e0 = R[R_E_PRE]
    decide_bar(i, s, ts, tradable, bars, P, S, R, Q, trades, rej, xfer, kills, equity, targets)
    done = i + 1 >= n
    if done:
        e1 = R[R_E_POST]
        R[R_DONE] = 1.0
    else:
        open_bar(i + 1, ts, bars, P, S, R, Q)
        e1 = R[R_E_PRE]
    cap = P[K.P_CAP_TOTAL]
    r = (e1 - e0) / cap
    d = differential_sharpe(r, R, Q)
    traded = S[K.S_NOTIONAL] - R[R_NOTIONAL]
    R[R_NOTIONAL] = S[K.S_NOTIONAL]
    R[R_LAST_R] = r
    R[R_LAST_DSR] = d
    scale = Q[Q_SCALE]
    reward = scale * r + Q[Q_DSR_W] * d - Q[Q_TURNOVER] * scale * traded / cap
    observe(i + 1 if not done else i, feats, bars, P, S, R, Q, obs)
    return reward, done


@njit(cache=True, nogil=True)
def run_targets(targets_in, ts, tradable, bars, feats, P, S, R, Q, trades, rej, xfer, kills, equity, targets):
    """A whole episode driven by a fixed target per bar (continuous actions): the parity path.
    Returns the sum of rewards."""
    reset(ts, bars, P, S, R, Q)
    obs = np.empty(feats.shape[1] + N_DYNAMIC, dtype=np.float32)
    total = 0.0
    for i in range(ts.shape[0]):
        reward, _ = step(
            targets_in[i],
            ts,
            tradable,
            bars,
            feats,
            P,
            S,
            R,
            Q,
            trades,
            rej,
            xfer,
            kills,
            equity,
            targets,
            obs,
        )
        total += reward
    return total
