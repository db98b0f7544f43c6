"""One day's joint minute-level simulation: prices, USD/KRW, premiums, flow, and 1-minute bars.

Every component is bridged from anchor i (00:00 UTC) to anchor i+1 (next 00:00 UTC); the randomness
comes from streams keyed by (seed, stream, day), so a day never depends on which days were generated
before it. Prices at the two end points are composed by one canonical function from the anchor state,
which makes the last close of day i bit-identical to the first open of day i+1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kimp.market_data.simulated.anchors import AnchorPath, anchor_path, half_life_factor, unit_t
from kimp.market_data.simulated.bridge import ou_bridge, random_walk_bridge
from kimp.market_data.simulated.params import SimParams
from kimp.market_data.simulated.timegrid import (
    MINUTES,
    S_DAY_CANDLES,
    S_DAY_PATH,
    crypto_vol_profile,
    fx_vol_profile,
    global_activity,
    korean_activity,
    rng,
)

MarketKey = tuple[str, str]  # (venue, symbol)
KNOWN_MARKETS: tuple[MarketKey, ...] = (
    ("upbit", "BTC/KRW"),
    ("upbit", "ETH/KRW"),
    ("upbit", "USDT/KRW"),
    ("bithumb", "BTC/KRW"),
    ("bithumb", "ETH/KRW"),
    ("binance", "BTC/USDT"),
    ("binance", "ETH/USDT"),
)


def compose_prices(
    x_btc: np.ndarray,
    x_eth: np.ndarray,
    f: np.ndarray,
    p_btc: np.ndarray,
    p_eth: np.ndarray,
    p_usdt: np.ndarray,
    b_btc: np.ndarray,
    b_eth: np.ndarray,
) -> dict[str, np.ndarray]:
    """Market prices from the state: KRW price = USDT price x USD/KRW x (1 + premium); Bithumb adds its
    basis; Upbit USDT/KRW = USD/KRW x (1 + USDT premium); USDT is taken as 1 USD."""
    btc, eth, fx = np.exp(x_btc), np.exp(x_eth), np.exp(f)
    return {
        "fx": fx,
        "upbit BTC/KRW": btc * fx * (1.0 + p_btc),
        "upbit ETH/KRW": eth * fx * (1.0 + p_eth),
        "upbit USDT/KRW": fx * (1.0 + p_usdt),
        "bithumb BTC/KRW": btc * fx * (1.0 + p_btc + b_btc),
        "bithumb ETH/KRW": eth * fx * (1.0 + p_eth + b_eth),
        "binance BTC/USDT": btc,
        "binance ETH/USDT": eth,
    }


def anchor_state(a: AnchorPath, p: SimParams, i: int) -> dict[str, float]:
    """The premium parts at anchor i, as the intraday paths must start/end there."""
    p_btc = float(a.premium[i])
    return {
        "x_btc": float(a.x_btc[i]),
        "x_eth": float(a.x_eth[i]),
        "f": float(a.f[i]),
        "p_btc": p_btc,
        "p_eth": p_btc + (float(a.eth_spread[i]) + float(a.eth_fast[i])),
        "p_usdt": p.usdt_premium_beta * p_btc + float(a.usdt_resid[i]),
        "b_btc": float(a.bithumb_slow[0, i] + a.bithumb_fast[0, i]),
        "b_eth": float(a.bithumb_slow[1, i] + a.bithumb_fast[1, i]),
    }


@lru_cache(maxsize=256)
def anchor_prices(seed: int, p: SimParams, i: int) -> dict[str, float]:
    """Canonical prices at anchor i: the only place boundary prices are computed (bit-exact joins)."""
    s = anchor_state(anchor_path(seed, p), p, i)
    # Premium parts are combined in exactly the same order as on the minute grid (see simulate_day).
    arrays = {k: np.array([v]) for k, v in s.items()}
    return {k: float(v[0]) for k, v in compose_prices(**arrays).items()}


@dataclass(frozen=True)
class Bars:
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # base units (None-free; FX bars carry zeros)
    quote_volume: np.ndarray
    log_sigma: np.ndarray  # per-minute log-price sd used for wicks and order-book noise


@dataclass(frozen=True)
class DayPath:
    """Minute grids (1441 points, 00:00 .. next 00:00) and 1440 bars per market for one day."""

    index: int
    weekday: int
    regime: int
    x_btc: np.ndarray
    x_eth: np.ndarray
    f: np.ndarray
    p_btc: np.ndarray
    p_eth: np.ndarray
    p_usdt: np.ndarray
    b_btc: np.ndarray
    b_eth: np.ndarray
    flow: np.ndarray
    vol_mult: np.ndarray  # 1440, intraday vol multiplier per minute
    prices: dict[str, np.ndarray]  # "venue SYMBOL" and "fx" -> 1441 mid prices
    bars: dict[str, Bars]  # same keys -> 1440 1-minute bars


def _wicks(
    g: np.random.Generator, o: np.ndarray, c: np.ndarray, var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """High/low of a Brownian bridge in log price from log o to log c with variance ``var``:
    P(max > m) = exp(-2 (m - a)(m - b) / var) gives max = (a + b + sqrt((b - a)^2 - 2 var ln U)) / 2."""
    la, lb = np.log(o), np.log(c)
    u1, u2 = g.random((2, o.shape[0]))
    d2 = (lb - la) ** 2
    hi = 0.5 * (la + lb + np.sqrt(d2 - 2.0 * var * np.log1p(-u1)))
    lo = 0.5 * (la + lb - np.sqrt(d2 - 2.0 * var * np.log1p(-u2)))
    top = np.maximum(o, c)
    bottom = np.minimum(o, c)
    return np.maximum(np.exp(hi), top), np.minimum(np.exp(lo), bottom)


def _bars(
    g: np.random.Generator,
    price: np.ndarray,
    var: np.ndarray,
    volume_usd: np.ndarray | None,
    usd_price: np.ndarray | None,
    p: SimParams,
) -> Bars:
    o, c = price[:-1], price[1:]
    high, low = _wicks(g, o, c, var)
    sigma = np.sqrt(var)
    if volume_usd is None or usd_price is None:
        vol = np.zeros(MINUTES)
    else:
        # Volume rises with the size of the minute's move relative to its expected size (E|z| ~ 0.8,
        # so the factor averages ~1).
        z = np.abs(np.log(c / o)) / sigma
        move = (0.4 + z) ** p.volume_vol_elasticity
        noise = np.exp(p.volume_noise_sd * g.standard_normal(MINUTES) - 0.5 * p.volume_noise_sd**2)
        vol = volume_usd * move * noise / usd_price
    typical = 0.25 * (o + high + low + c)
    return Bars(o, high, low, c, vol, vol * typical, sigma)


@lru_cache(maxsize=16)
def simulate_day(seed: int, p: SimParams, i: int) -> DayPath:
    a = anchor_path(seed, p)
    s0, s1 = anchor_state(a, p, i), anchor_state(a, p, i + 1)
    weekday = (p.origin.weekday() + i) % 7
    weekend = weekday >= 5
    r = int(a.regime[i])
    g = rng(seed, S_DAY_PATH, i)
    n = MINUTES

    # Intraday vol multiplier (clustering): log-OU bridged between independent anchor draws.
    av = half_life_factor(p.vol_mult_half_life_min)
    lvm = ou_bridge(
        float(a.log_vol_mult[i]), float(a.log_vol_mult[i + 1]), av,
        p.vol_mult_sd * math.sqrt(1 - av * av), g.standard_normal(n),
    )  # fmt: skip
    mult = np.exp(lvm[:-1] - 0.5 * p.vol_mult_sd**2)

    # BTC / ETH: random walks whose minute variances follow the activity profile x multiplier and add up
    # to the day's GARCH variance; bivariate-t shocks (shared mixing) keep ETH ~0.8 correlated.
    w = crypto_vol_profile() * mult
    var_btc = float(a.btc_day_var[i]) * w / w.sum()
    mix = np.sqrt((p.price_t_dof - 2.0) / g.chisquare(p.price_t_dof, n))
    z1, z2 = g.standard_normal((2, n))
    e_btc = z1 * mix
    e_eth = (p.eth_corr * z1 + math.sqrt(1 - p.eth_corr**2) * z2) * mix
    x_btc = random_walk_bridge(s0["x_btc"], s1["x_btc"], var_btc, e_btc)
    x_eth = random_walk_bridge(s0["x_eth"], s1["x_eth"], var_btc * p.eth_vol_ratio**2, e_eth)

    # USD/KRW: variance concentrated in the Seoul session on weekdays, flat and small at weekends.
    prof_fx = fx_vol_profile(weekend)
    var_fx = float(a.fx_vol[i]) ** 2 * prof_fx / prof_fx.sum()
    f = random_walk_bridge(s0["f"], s1["f"], var_fx, unit_t(g, p.fx_t_dof, n))
    df = np.diff(f)

    # Korean retail flow: OU (daily AR flow_ar) around the regime's mean.
    fm = p.regime_flow_mean[r]
    af = p.flow_ar ** (1.0 / n)
    flow = fm + ou_bridge(
        float(a.flow[i]) - fm, float(a.flow[i + 1]) - fm, af, math.sqrt(1 - af * af), g.standard_normal(n)
    )

    # Premium level glides linearly between anchors (its daily change is small and deterministic).
    frac = np.arange(n + 1) / n
    level = a.level[i] + frac * (a.level[i + 1] - a.level[i])

    # Residual: daily AR(1) resid_ar as a minute OU with t shocks, the slow FX pass-through, and the
    # day's jump at its anchor-drawn minute; bridged to the next anchor.
    az = p.resid_ar ** (1.0 / n)
    sz = p.regime_resid_vol[r] / math.sqrt(1 - p.resid_ar**2) * math.sqrt(1 - az * az)
    forcing = -p.fx_beta_slow * df
    forcing[int(a.jump_minute[i])] += a.jump[i]
    resid = ou_bridge(
        float(a.resid[i]), float(a.resid[i + 1]), az, sz, unit_t(g, p.premium_t_dof, n), forcing
    )

    # Transient: 2-hour half-life, shocks scaled by the vol multiplier (premium vol clusters with price
    # vol), fast FX pass-through (sticky KRW prices) and intraday jumps.
    at = half_life_factor(p.transient_half_life_min)
    st = p.regime_transient_sd[r] * math.sqrt(1 - at * at) * np.sqrt(mult)
    forcing = -p.fx_beta_fast * df
    n_jumps = g.poisson(p.transient_jump_rate[r])
    where = g.integers(0, n, n_jumps)
    sizes = p.transient_jump_scale[r] * unit_t(g, p.premium_t_dof, n_jumps)
    np.add.at(forcing, where, sizes)
    transient = ou_bridge(
        float(a.transient[i]), float(a.transient[i + 1]), at, st, unit_t(g, p.transient_t_dof, n), forcing
    )

    def stationary_bridge(x0: float, x1: float, daily_ar: float, sd: float) -> np.ndarray:
        am = daily_ar ** (1.0 / n)
        return ou_bridge(x0, x1, am, sd * math.sqrt(1 - am * am), g.standard_normal(n))

    eth_spread = stationary_bridge(
        float(a.eth_spread[i]), float(a.eth_spread[i + 1]), p.eth_spread_ar, p.eth_spread_sd
    )
    ae = half_life_factor(p.eth_fast_half_life_min)
    eth_fast = ou_bridge(
        float(a.eth_fast[i]), float(a.eth_fast[i + 1]), ae, p.eth_fast_sd * math.sqrt(1 - ae * ae),
        g.standard_normal(n),
    )  # fmt: skip
    usdt_resid = stationary_bridge(
        float(a.usdt_resid[i]), float(a.usdt_resid[i + 1]), p.usdt_resid_ar, p.usdt_resid_sd
    )
    ab = half_life_factor(p.bithumb_fast_half_life_min)
    basis = []
    for c in range(2):
        slow = stationary_bridge(
            float(a.bithumb_slow[c, i]),
            float(a.bithumb_slow[c, i + 1]),
            p.bithumb_basis_ar,
            p.bithumb_basis_sd,
        )
        fast = ou_bridge(
            float(a.bithumb_fast[c, i]), float(a.bithumb_fast[c, i + 1]), ab,
            p.bithumb_fast_sd * math.sqrt(1 - ab * ab), g.standard_normal(n),
        )  # fmt: skip
        basis.append(slow + fast)

    # Same formula as AnchorPath.premium.
    p_btc = level + p.flow_premium_beta * flow + resid + transient
    p_eth = p_btc + (eth_spread + eth_fast)
    p_usdt = p.usdt_premium_beta * p_btc + usdt_resid
    prices = compose_prices(x_btc, x_eth, f, p_btc, p_eth, p_usdt, basis[0], basis[1])
    start, end = anchor_prices(seed, p, i), anchor_prices(seed, p, i + 1)
    for k, v in prices.items():
        v[0], v[-1] = start[k], end[k]

    # Bars. Wick variance: price variance plus, for KRW markets, FX and premium-transient variance.
    gc = rng(seed, S_DAY_CANDLES, i)
    var_prem = st**2
    var = {
        "fx": var_fx,
        "binance BTC/USDT": var_btc,
        "binance ETH/USDT": var_btc * p.eth_vol_ratio**2,
    }
    for venue in ("upbit", "bithumb"):
        var[f"{venue} BTC/KRW"] = var_btc + var_fx + var_prem
        var[f"{venue} ETH/KRW"] = var_btc * p.eth_vol_ratio**2 + var_fx + var_prem
    var["upbit USDT/KRW"] = var_fx + (p.usdt_premium_beta**2) * var_prem + 1e-9
    act = p.weekend_crypto_activity if weekend else 1.0
    kr_activity = korean_activity() * np.exp(p.flow_volume_beta * flow[:-1] - 0.5 * p.flow_volume_beta**2)
    usd_per_krw = 1.0 / prices["fx"][:-1]
    bars: dict[str, Bars] = {"fx": _bars(gc, prices["fx"], var["fx"], None, None, p)}
    for spec in p.markets:
        key = f"{spec.venue} {spec.symbol}"
        profile = kr_activity if spec.korean else global_activity()
        volume_usd = spec.daily_notional_usd / n * act * profile * np.sqrt(mult)
        px = prices[key][:-1]
        usd_price = px * usd_per_krw if spec.quote == "KRW" else px
        bars[key] = _bars(gc, prices[key], var[key], volume_usd, usd_price, p)

    return DayPath(
        index=i,
        weekday=weekday,
        regime=r,
        x_btc=x_btc,
        x_eth=x_eth,
        f=f,
        p_btc=p_btc,
        p_eth=p_eth,
        p_usdt=p_usdt,
        b_btc=basis[0],
        b_eth=basis[1],
        flow=flow,
        vol_mult=mult,
        prices=prices,
        bars=bars,
    )
