"""The daily anchor path: the market's state at 00:00 UTC of every day from origin to horizon + 1.

Computed once per (seed, params) and cached. Intraday paths are bridges between consecutive anchors, so
any day can be generated alone and still join its neighbours exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kimp.market_data.simulated import kernels
from kimp.market_data.simulated.params import SimParams
from kimp.market_data.simulated.timegrid import (
    MINUTES,
    S_ANCHOR_AUX,
    S_ANCHOR_MACRO,
    S_ANCHOR_ONCHAIN,
    S_ANCHOR_PREMIUM,
    S_ANCHOR_PRICE,
    anchor_weekdays,
    lin_trend,
    log_trend,
    n_days,
    rng,
)


def unit_t(g: np.random.Generator, dof: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Student-t draws scaled to unit variance (dof > 2)."""
    return g.standard_t(dof, size) * math.sqrt((dof - 2.0) / dof)


def half_life_factor(half_life: float) -> float:
    """Per-step AR factor of a process with this half-life (in steps)."""
    return math.exp(-math.log(2.0) / half_life)


@dataclass(frozen=True)
class AnchorPath:
    """Arrays of length n_days + 1 (anchor i = 00:00 UTC of day i) unless noted."""

    regime: np.ndarray  # premium regime of the day starting at anchor i
    btc_var: np.ndarray  # GARCH daily variance (before the weekend scaling)
    btc_day_var: np.ndarray  # variance of day i's BTC log return (GARCH x weekend scaling)
    x_btc: np.ndarray  # log BTC/USDT
    x_eth: np.ndarray  # log ETH/USDT
    f: np.ndarray  # log USD/KRW
    fx_vol: np.ndarray  # daily sd of day i's USD/KRW log change (low on weekends)
    flow: np.ndarray  # latent Korean retail flow (standardised)
    level: np.ndarray  # regime level of the premium (glides)
    resid: np.ndarray  # AR(1) premium residual
    transient: np.ndarray  # fast premium transient (independent stationary draw per anchor)
    jump: np.ndarray  # premium jump during day i
    jump_minute: np.ndarray  # minute of day i at which that jump happens
    eth_spread: np.ndarray  # ETH premium minus BTC premium, slow part
    eth_fast: np.ndarray  # ETH premium minus BTC premium, fast part (independent draws per anchor)
    usdt_resid: np.ndarray  # USDT/KRW premium minus usdt_premium_beta x BTC premium
    bithumb_slow: np.ndarray  # (2, n+1) Bithumb minus Upbit premium, slow part, BTC and ETH
    bithumb_fast: np.ndarray  # (2, n+1) fast part (independent draws per anchor)
    log_vol_mult: np.ndarray  # intraday log vol multiplier at each anchor (independent draws)
    macro: dict[str, np.ndarray]  # daily close values, index i = close on day i (held on weekends)
    hash_rate: np.ndarray  # (2, n+1) daily hash-rate level, BTC EH/s and ETH TH/s-equivalent
    difficulty: np.ndarray  # (2, n+1) difficulty in force on day i (piecewise constant)
    realized_price: np.ndarray  # (2, n+1) USD realised price (EMA of price) known at anchor i
    log_nvt: np.ndarray  # (2, n+1) daily NVT level (log)

    premium: np.ndarray  # Upbit BTC FX-based premium = level + flow_premium_beta flow + resid + transient


def _macro(
    p: SimParams,
    seed: int,
    n: int,
    weekday: np.ndarray,
    btc_var: np.ndarray,
    e_btc: np.ndarray,
    e_fx: np.ndarray,
    n_flow: np.ndarray,
) -> dict[str, np.ndarray]:
    g = rng(seed, S_ANCHOR_MACRO)
    z = g.standard_normal((8, n))
    active = weekday[1:] < 5  # the close on day i+1 exists only on weekdays
    phi = half_life_factor(p.macro_half_life_days)
    ones = np.ones(n)
    out: dict[str, np.ndarray] = {}

    a, b = p.kospi_flow_loading, p.kospi_btc_loading
    kospi_std = a * n_flow + b * np.clip(e_btc, -4, 4) + math.sqrt(1 - a * a - b * b) * z[0]
    m = log_trend(p.kospi_trend, p)
    out["kospi"] = np.exp(kernels.ou_daily(m, phi, ones, p.kospi_vol * kospi_std, m[0], active))
    m = m + math.log(p.kosdaq_ratio)
    rho_k = p.kosdaq_kospi_corr
    shock = p.kosdaq_vol * (rho_k * kospi_std + math.sqrt(1 - rho_k**2) * z[1])
    out["kosdaq"] = np.exp(kernels.ou_daily(m, phi, ones, shock, m[0], active))

    lv = p.vix_btc_loading
    m = math.log(p.vix_level) + p.vix_crypto_vol_beta * np.log(np.sqrt(btc_var) / p.btc_daily_vol)
    shock = p.vix_vol * (lv * np.clip(e_btc, -4, 4) + math.sqrt(1 - lv * lv) * z[2])
    vix = np.exp(kernels.ou_daily(m, p.vix_ar, ones, shock, m[0], active))
    out["vix"] = np.clip(vix, *p.vix_bounds)

    lf = p.dxy_fx_loading
    m = log_trend(p.dxy_trend, p)
    shock = p.dxy_vol * (lf * np.clip(e_fx, -4, 4) + math.sqrt(1 - lf * lf) * z[3])
    out["dxy"] = np.exp(kernels.ou_daily(m, phi, ones, shock, m[0], active))

    m = log_trend(p.gold_trend, p)
    gold_shock = p.gold_vol * z[4]
    log_gold = kernels.ou_daily(m, phi, ones, gold_shock, m[0], active)
    out["gold"] = np.exp(log_gold)
    # Silver = gold / ratio with silver's beta b to gold: ratio shock = (1 - b) gold shock - own shock.
    beta_s = p.silver_gold_beta
    own = math.sqrt(max(p.silver_vol**2 - (beta_s * p.gold_vol) ** 2, 1e-8))
    m = np.full(n + 1, math.log(p.gold_silver_ratio))
    log_ratio = kernels.ou_daily(
        m,
        half_life_factor(p.gold_silver_half_life_days),
        ones,
        (1 - beta_s) * gold_shock - own * z[5],
        m[0],
        active,
    )
    out["silver"] = np.exp(log_gold - log_ratio)

    rho = p.yield_corr
    for name, knots, vol, eps in (
        ("us2y", p.us2y_trend, p.us2y_vol, z[6]),
        ("us10y", p.us10y_trend, p.us10y_vol, rho * z[6] + math.sqrt(1 - rho * rho) * z[7]),
    ):
        m = lin_trend(knots, p)
        y = kernels.ou_daily(m, phi, ones, vol * eps, m[0], active)
        out[name] = np.maximum(y, p.yield_floor)
    return out


def _onchain(
    p: SimParams, seed: int, n: int, x_btc: np.ndarray, x_eth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    g = rng(seed, S_ANCHOR_ONCHAIN)
    ones = np.ones(n)
    always = np.ones(n, dtype=np.bool_)
    hash_rate = np.empty((2, n + 1))
    difficulty = np.empty((2, n + 1))
    realized = np.empty((2, n + 1))
    log_nvt = np.empty((2, n + 1))
    phi_h = half_life_factor(p.hash_noise_half_life_days)
    phi_nvt = half_life_factor(p.nvt_half_life_days)
    epoch = np.arange(n + 1) // p.difficulty_epoch_days
    # Difficulty = expected hashes per block: hash rate (H/s) x block time; BTC's protocol constant
    # divides by 2^32. Each epoch uses the mean hash rate of the previous epoch (retargeting lag).
    to_difficulty = (1e18 * 600.0 / 2.0**32, 1e12 * 13.0)
    for c, (knots, x) in enumerate(((p.btc_hash_trend, x_btc), (p.eth_hash_trend, x_eth))):
        noise0 = g.standard_normal() * p.hash_noise_sd
        scale = p.hash_noise_sd * math.sqrt(1 - phi_h**2) * ones
        noise = kernels.ou_daily(np.zeros(n + 1), phi_h, scale, g.standard_normal(n), noise0, always)
        hash_rate[c] = np.exp(log_trend(knots, p) + noise)
        sums = np.bincount(epoch, weights=hash_rate[c])
        means = sums / np.bincount(epoch)
        prev = np.concatenate([[hash_rate[c, 0]], means[:-1]])
        difficulty[c] = prev[epoch] * to_difficulty[c]
        realized[c] = kernels.ema(np.exp(x), half_life_factor(p.realized_price_half_life_days))
        m = np.full(n + 1, math.log(p.nvt_level[c]))
        log_nvt[c] = kernels.ou_daily(m, phi_nvt, p.nvt_vol * ones, g.standard_normal(n), m[0], always)
    return hash_rate, difficulty, realized, log_nvt


@lru_cache(maxsize=4)
def anchor_path(seed: int, p: SimParams) -> AnchorPath:
    n = n_days(p)
    weekday = anchor_weekdays(p)

    g = rng(seed, S_ANCHOR_PRICE)
    # Multivariate t for BTC/ETH (shared chi-square: crashes hit both coins on the same day).
    mix = np.sqrt((p.price_t_dof - 2.0) / g.chisquare(p.price_t_dof, n))
    z1, z2 = g.standard_normal((2, n))
    e_btc = z1 * mix
    e_eth = (p.eth_corr * z1 + math.sqrt(1 - p.eth_corr**2) * z2) * mix
    e_fx = unit_t(g, p.fx_t_dof, n)
    fx_vol = np.where(weekday[:n] >= 5, p.fx_daily_vol * p.fx_weekend_vol_ratio, p.fx_daily_vol)
    vol_scale = np.where(weekday[:n] >= 5, math.sqrt(p.weekend_crypto_activity), 1.0)

    g = rng(seed, S_ANCHOR_PREMIUM)
    n_flow = g.standard_normal(n)
    t_resid = unit_t(g, p.premium_t_dof, n)
    jump_u = g.random(n)
    jump_t = unit_t(g, p.premium_t_dof, n)
    regime_u = g.random(n)
    n_trans = g.standard_normal(n + 1)
    jump_minute = g.integers(0, MINUTES, n + 1)

    omega = p.btc_daily_vol**2 * (1.0 - p.garch_alpha - p.garch_beta)
    regime, h, x_btc, x_eth, f, flow, level, resid, transient, jump = kernels.anchor_core(
        log_trend(p.btc_trend, p),
        log_trend(p.eth_trend, p),
        log_trend(p.fx_trend, p),
        fx_vol,
        vol_scale,
        e_btc,
        e_eth,
        e_fx,
        n_flow,
        t_resid,
        jump_u,
        jump_t,
        regime_u,
        n_trans,
        np.array(p.regime_level),
        np.array(p.regime_resid_vol),
        np.array(p.regime_transient_sd),
        np.array(p.regime_flow_mean),
        np.array(p.jump_prob),
        np.array(p.jump_scale),
        np.array(p.regime_transition),
        half_life_factor(p.price_reversion_half_life_days),
        omega,
        p.garch_alpha,
        p.garch_beta,
        p.max_daily_vol**2,
        p.eth_vol_ratio,
        half_life_factor(p.fx_reversion_half_life_days),
        p.flow_ar,
        p.level_glide,
        p.resid_ar,
        p.fx_beta_slow,
        p.flow_premium_beta,
        p.premium_bounds[0],
        p.premium_bounds[1],
        p.regime_momentum_boost,
        p.momentum_window_days,
        p.initial_regime,
    )

    g = rng(seed, S_ANCHOR_AUX)
    zeros = np.zeros(n + 1)
    always = np.ones(n, dtype=np.bool_)

    def stationary_ar(phi: float, sd: float) -> np.ndarray:
        scale = np.full(n, sd * math.sqrt(1 - phi * phi))
        return kernels.ou_daily(zeros, phi, scale, g.standard_normal(n), g.standard_normal() * sd, always)

    eth_spread = stationary_ar(p.eth_spread_ar, p.eth_spread_sd)
    usdt_resid = stationary_ar(p.usdt_resid_ar, p.usdt_resid_sd)
    bithumb_slow = np.stack([stationary_ar(p.bithumb_basis_ar, p.bithumb_basis_sd) for _ in range(2)])
    bithumb_fast = g.standard_normal((2, n + 1)) * p.bithumb_fast_sd
    log_vol_mult = g.standard_normal(n + 1) * p.vol_mult_sd
    eth_fast = g.standard_normal(n + 1) * p.eth_fast_sd

    macro = _macro(p, seed, n, weekday, h, e_btc, e_fx, n_flow)
    hash_rate, difficulty, realized, log_nvt = _onchain(p, seed, n, x_btc, x_eth)
    return AnchorPath(
        regime=regime,
        btc_var=h,
        btc_day_var=h * np.append(vol_scale, 1.0) ** 2,
        x_btc=x_btc,
        x_eth=x_eth,
        f=f,
        fx_vol=np.append(fx_vol, fx_vol[-1]),
        flow=flow,
        level=level,
        resid=resid,
        transient=transient,
        jump=jump,
        jump_minute=jump_minute,
        eth_spread=eth_spread,
        eth_fast=eth_fast,
        usdt_resid=usdt_resid,
        bithumb_slow=bithumb_slow,
        bithumb_fast=bithumb_fast,
        log_vol_mult=log_vol_mult,
        macro=macro,
        hash_rate=hash_rate,
        difficulty=difficulty,
        realized_price=realized,
        log_nvt=log_nvt,
        premium=level + p.flow_premium_beta * flow + resid + transient,
    )
