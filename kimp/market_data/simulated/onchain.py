"""On-chain metrics per 10-minute window for BTC and ETH, derived from the day's joint simulation.

Fast metrics (flows, whale transfers, active addresses) react to the premium, retail flow and price
moves inside the window; slow ones (hash rate, difficulty, realised price) come from the anchor path.
A window's row is published at its end, and uses only data from inside or before the window.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kimp.market_data.schemas import UTC_TS
from kimp.market_data.simulated.anchors import anchor_path
from kimp.market_data.simulated.intraday import DayPath
from kimp.market_data.simulated.params import SimParams
from kimp.market_data.simulated.timegrid import MINUTES, S_DAY_ONCHAIN, global_activity, korean_activity, rng

WINDOW_MIN = 10
N_WIN = MINUTES // WINDOW_MIN


def onchain_frame(day: DayPath, seed: int, p: SimParams, day_start_us: int) -> pl.DataFrame:
    a = anchor_path(seed, p)
    i = day.index
    g = rng(seed, S_DAY_ONCHAIN, i)
    starts = np.arange(N_WIN) * WINDOW_MIN
    ends = starts + WINDOW_MIN
    frac = (starts + 0.5 * WINDOW_MIN) / MINUTES
    activity = (0.5 * korean_activity() + 0.5 * global_activity()).reshape(N_WIN, WINDOW_MIN).mean(axis=1)
    flow = day.flow[:-1].reshape(N_WIN, WINDOW_MIN).mean(axis=1)
    ts_us = day_start_us + starts.astype(np.int64) * 60_000_000
    frames = []
    sd = p.exchange_flow_noise_sd
    for c, (coin, x, prem, market) in enumerate(
        (
            ("BTC", day.x_btc, day.p_btc, "binance BTC/USDT"),
            ("ETH", day.x_eth, day.p_eth, "binance ETH/USDT"),
        )
    ):
        price = np.exp(x[ends])
        ret = x[ends] - x[starts]
        sig = np.sqrt((day.bars[market].log_sigma ** 2).reshape(N_WIN, WINDOW_MIN).sum(axis=1))
        shock = np.minimum(np.abs(ret) / sig, 4.0)
        prem_w = prem[:-1].reshape(N_WIN, WINDOW_MIN).mean(axis=1)
        coins = p.exchange_flow_usd[c] / price * activity
        inflow = coins * np.exp(
            p.inflow_premium_beta * prem_w + p.inflow_flow_beta * flow + p.inflow_move_beta * shock
            + sd * g.standard_normal(N_WIN) - 0.5 * sd * sd
        )  # fmt: skip
        outflow = coins * np.exp(
            -0.5 * p.inflow_premium_beta * prem_w + sd * g.standard_normal(N_WIN) - 0.5 * sd * sd
        )
        whales = g.poisson(
            p.whale_rate[c]
            * activity
            * np.exp(p.whale_move_beta * shock + p.whale_premium_beta * np.maximum(prem_w, 0.0))
        )
        addresses = np.rint(
            p.active_addresses[c] * activity * np.exp(0.1 * flow + 0.08 * g.standard_normal(N_WIN))
        ).astype(np.int64)
        log_hash = np.log(a.hash_rate[c, i]) + frac * (
            np.log(a.hash_rate[c, i + 1]) - np.log(a.hash_rate[c, i])
        )
        hash_rate = np.exp(log_hash + p.hash_intraday_noise_sd * g.standard_normal(N_WIN))
        log_nvt = a.log_nvt[c, i] + frac * (a.log_nvt[c, i + 1] - a.log_nvt[c, i])
        nvt = np.exp(log_nvt - 0.1 * flow + 0.05 * g.standard_normal(N_WIN))
        frames.append(
            pl.DataFrame(
                {
                    "ts": pl.Series(ts_us, dtype=pl.Int64).cast(UTC_TS),
                    "published_at": pl.Series(ts_us + WINDOW_MIN * 60_000_000, dtype=pl.Int64).cast(UTC_TS),
                    "coin": [coin] * N_WIN,
                    "exchange_inflow": inflow,
                    "exchange_outflow": outflow,
                    "whale_tx_count": whales.astype(np.int64),
                    "active_addresses": np.maximum(addresses, 1),
                    "hash_rate": hash_rate,
                    "difficulty": np.full(N_WIN, a.difficulty[c, i]),
                    "mvrv": price / a.realized_price[c, i],
                    "nvt": nvt,
                }
            )
        )
    return pl.concat(frames)
