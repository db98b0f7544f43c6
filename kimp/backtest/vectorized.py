"""The vectorized engine: one numba pass over bars, for research sweeps.

Signals are arrays computed up front (NumPy / numba); the pass sizes, clips and fills each decision at
the bar close with the slippage and impact models (bar-level fills: taker, no latency), charges funding
and transfers and marks the equity, all through :mod:`kimp.backtest.kernel`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from kimp.backtest import kernel as K
from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import Market
from kimp.backtest.result import BacktestResult, finish, prepare


@njit(cache=True, nogil=True)
def run_bars(
    first_open,
    ts_close,
    kr_close,
    bn_close,
    conv,
    target,
    tradable,
    day_end,
    kr_ref_buy,
    kr_ref_sell,
    bn_ref_buy,
    bn_ref_sell,
    kr_vol,
    bn_vol,
    kr_sig,
    bn_sig,
    P,
    S,
    trades,
    rej,
    xfer,
    equity,
    pos_kr,
    pos_bn,
):
    n = ts_close.shape[0]
    ntr = 0
    nrej = 0
    nx = 0
    funding_us = np.int64(P[K.P_FUNDING_US])
    perp = P[K.P_PERP] != 0 and P[K.P_FUNDING_RATE] != 0
    next_funding = (first_open // funding_us + 1) * funding_us  # funding instants in (first_open, ...]
    for i in range(n):
        t = ts_close[i]
        K.land_transfer(S, t)
        if perp and t >= next_funding:
            k = (t - next_funding) // funding_us + 1
            next_funding += k * funding_us
            if S[K.S_POS_BN] != 0:
                K.charge_funding(S, P, bn_close[i], conv[i], k)
        forced = day_end[i]
        s = 0.0 if forced else target[i]
        if (tradable[i] or forced) and not K.quiet(S, P, s, kr_close[i], bn_close[i], conv[i]):
            ntr, nrej, nx = K.bar_decision(
                S,
                P,
                i,
                t,
                s,
                kr_close[i],
                bn_close[i],
                conv[i],
                kr_ref_buy,
                kr_ref_sell,
                bn_ref_buy,
                bn_ref_sell,
                kr_vol,
                bn_vol,
                kr_sig,
                bn_sig,
                trades,
                ntr,
                rej,
                nrej,
                xfer,
                nx,
            )
        equity[i] = K.mark(S, P, kr_close[i], bn_close[i], conv[i])
        pos_kr[i] = S[K.S_POS_KR]
        pos_bn[i] = S[K.S_POS_BN]
    return ntr, nrej, nx


def run_vectorized(
    market: Market, signals: pl.DataFrame, config: BacktestConfig | None = None
) -> BacktestResult:
    """Backtest ``signals`` (ts, target) on ``market`` with bar-level fills. See BacktestResult."""
    cfg = config or BacktestConfig()
    prep = prepare(market, signals, cfg, trade_capacity=2 * market.n + 64)
    if cfg.fill == "book":
        prep.notes.append(
            "the vectorized engine always fills at bar level; fill='book' is for run_event_driven"
        )
    n = market.n
    equity, pos_kr, pos_bn = np.empty(n), np.empty(n), np.empty(n)
    ntr, nrej, nx = run_bars(
        np.int64(market.ts[0]),
        prep.ts_close,
        market.kr_close,
        market.bn_close,
        market.conv,
        prep.target,
        market.tradable,
        prep.day_end,
        prep.kr_ref_buy,
        prep.kr_ref_sell,
        prep.bn_ref_buy,
        prep.bn_ref_sell,
        market.kr_volume,
        market.bn_volume,
        prep.kr_sigma,
        prep.bn_sigma,
        prep.params,
        prep.state,
        prep.trades,
        prep.rejections,
        prep.transfers,
        equity,
        pos_kr,
        pos_bn,
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
    )
