"""L10 order-book snapshots, vectorised over snapshots (any interval that divides a day, down to 100 ms).

Mid: inside each minute, the straight line from the bar's open to its close plus a bridge-shaped noise
(zero at the minute's ends), clipped to the bar's [low, high], so books agree with the candles and a
snapshot on a minute boundary sits exactly on the bar's open. Prices sit on the venue's tick grid; the
spread widens with the minute's volatility; sizes grow with depth, are lognormal, and are tilted by a
persistent order-flow imbalance.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from kimp.market_data.schemas import BOOK_LEVELS, UTC_TS
from kimp.market_data.simulated import kernels
from kimp.market_data.simulated.intraday import DayPath
from kimp.market_data.simulated.params import MarketSpec, SimParams
from kimp.market_data.simulated.timegrid import DAY_MS, S_DAY_BOOK, rng

# Upbit KRW-market tick table (price floor -> tick), also used for Bithumb.
_KRW_FLOORS = np.array([1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 5e5, 1e6, 2e6])
_KRW_TICKS = np.array([1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 50.0, 100.0, 500.0, 1000.0])


def krw_tick(price: np.ndarray) -> np.ndarray:
    return _KRW_TICKS[np.searchsorted(_KRW_FLOORS, price, side="right")]


def usdt_tick(price: np.ndarray, tick: float) -> np.ndarray:
    """The market's fixed tick, refined for very low prices (keeps at least ~4 significant digits)."""
    return np.minimum(tick, 10.0 ** (np.floor(np.log10(price)) - 4.0))


def book_frame(
    day: DayPath,
    spec: MarketSpec,
    market_no: int,
    interval_ms: int,
    seed: int,
    p: SimParams,
    day_start_us: int,
) -> pl.DataFrame:
    """One market's snapshots for one day, as a frame with ts, venue, symbol and the 40 book columns."""
    n_s = DAY_MS // interval_ms
    key = f"{spec.venue} {spec.symbol}"
    bars = day.bars[key]
    g = rng(seed, S_DAY_BOOK, day.index, market_no, interval_ms)

    t_ms = np.arange(n_s, dtype=np.int64) * interval_ms
    m = t_ms // 60_000
    u = (t_ms - m * 60_000) / 60_000.0
    lo, lc = np.log(bars.open[m]), np.log(bars.close[m])
    sigma = bars.log_sigma[m]
    xi = kernels.ar1_unit(g.standard_normal(n_s), math.exp(-interval_ms / (p.mid_noise_corr_s * 1000.0)))
    lmid = lo + u * (lc - lo) + p.mid_noise_frac * sigma * np.sqrt(u * (1.0 - u)) * xi
    mid = np.exp(np.clip(lmid, np.log(bars.low[m]), np.log(bars.high[m])))

    tick = krw_tick(mid) if spec.quote == "KRW" else usdt_tick(mid, spec.tick)
    vol_ratio = sigma / np.median(bars.log_sigma)
    noise = np.exp(p.spread_noise_sd * g.standard_normal(n_s) - 0.5 * p.spread_noise_sd**2)
    half = mid * spec.half_spread_bps * 1e-4 * vol_ratio**p.spread_vol_elasticity * noise
    bid1 = np.floor((mid - half) / tick)
    ask1 = np.maximum(np.ceil((mid + half) / tick), bid1 + 1.0)

    # Level arrays are (level, snapshot): each level is one contiguous column of the output.
    # Gaps between levels in whole ticks (>= 1): geometric-like with the market's mean gap.
    extra = np.maximum(spec.level_gap_bps * 1e-4 * mid / tick - 1.0, 0.0)
    shape = (BOOK_LEVELS - 1, n_s)

    def depth() -> np.ndarray:
        gaps = g.standard_exponential(shape)
        gaps *= extra
        np.floor(gaps, out=gaps)
        gaps += 1.0
        return np.cumsum(gaps, axis=0, out=gaps)

    depth_b, depth_a = depth(), depth()
    bid_px = np.concatenate([bid1[None, :], bid1 - depth_b]) * tick
    ask_px = np.concatenate([ask1[None, :], ask1 + depth_a]) * tick
    # Both tick rules keep >= 1,000 ticks below any price, so ten levels never reach zero.

    usd_mid = mid / day.prices["fx"][m] if spec.quote == "KRW" else mid
    base = spec.level1_notional_usd / usd_mid
    growth = p.book_size_growth ** np.arange(BOOK_LEVELS)
    a_imb = math.exp(-math.log(2.0) * interval_ms / (p.imbalance_half_life_s * 1000.0))
    tilt = p.imbalance_strength * np.tanh(kernels.ar1_unit(g.standard_normal(n_s), a_imb))
    sd = p.book_size_noise_sd

    def sizes(sign: float) -> np.ndarray:
        out = g.standard_normal((BOOK_LEVELS, n_s))  # in-place from here: this is the hot loop at 100 ms
        out *= sd
        out -= 0.5 * sd * sd
        np.exp(out, out=out)
        out *= growth[:, None]
        out *= (base * (1.0 + sign * tilt))[None, :]
        return out

    bid_sz, ask_sz = sizes(1.0), sizes(-1.0)
    cols: dict[str, object] = {
        "ts": pl.Series("ts", day_start_us + t_ms * 1000, dtype=pl.Int64).cast(UTC_TS),
        "venue": pl.repeat(spec.venue, n_s, eager=True, dtype=pl.String),
        "symbol": pl.repeat(spec.symbol, n_s, eager=True, dtype=pl.String),
    }
    for name, arr in (("bid_px", bid_px), ("bid_sz", bid_sz), ("ask_px", ask_px), ("ask_sz", ask_sz)):
        for lvl in range(BOOK_LEVELS):
            cols[f"{name}_{lvl + 1}"] = arr[lvl]
    return pl.DataFrame(cols)
