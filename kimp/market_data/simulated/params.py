"""Every number the simulator uses, in one frozen (hashable) dataclass, each with its calibration reason.

Units: premiums and basis are fractions (0.02 = 2 %), "pp" in comments means percentage points; prices
are in quote currency; volatilities are standard deviations of log changes over the stated horizon.
Calibration targets come from /work/shared/notes/market-facts.md (real Upbit/Bithumb/Binance samples)
unless a comment says otherwise. ``SimParams`` is hashable so it can key the caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# Premium regimes (index into the per-regime tuples below).
CALM, NORMAL, EUPHORIC, DISCOUNT = 0, 1, 2, 3
REGIME_NAMES: tuple[str, ...] = ("calm", "normal", "euphoric", "discount")

Knots = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class MarketSpec:
    """One simulated market: identity, liquidity and order-book shape."""

    venue: str
    symbol: str
    base: str
    quote: str
    # Average daily traded notional in USD; per-minute volume = this / price, shaped by profiles.
    daily_notional_usd: float
    # Notional (USD) resting on book level 1; deeper levels grow by SimParams.book_size_growth.
    level1_notional_usd: float
    # Typical half-spread in basis points before volatility scaling (at least half a tick is enforced).
    half_spread_bps: float
    # Mean distance between adjacent book levels in bps (at least one tick).
    level_gap_bps: float
    # Fixed tick for USDT markets; KRW markets use the Upbit KRW tick table (see orderbook.krw_tick).
    tick: float
    # Whether volumes follow Korean retail hours and flow (Upbit, Bithumb) or the global profile (Binance).
    korean: bool


# Liquidity calibrated to 2024-25 orders of magnitude (public exchange dashboards): Binance spot
# BTC/USDT trades ~1-2 bn USD a day with a one-tick spread; Upbit BTC/KRW ~0.3-0.6 bn USD; Bithumb about a
# third of Upbit; Upbit USDT/KRW ~0.2 bn USD. Spreads: Binance BTC one 0.01 tick, Upbit BTC 1-2 ticks of
# 1,000 KRW (~0.7 bp), Bithumb a bit wider.
DEFAULT_MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec("upbit", "BTC/KRW", "BTC", "KRW", 4.0e8, 6.0e4, 0.6, 0.8, 1.0, True),
    MarketSpec("upbit", "ETH/KRW", "ETH", "KRW", 1.8e8, 4.0e4, 1.0, 1.2, 1.0, True),
    MarketSpec("upbit", "USDT/KRW", "USDT", "KRW", 2.0e8, 2.0e5, 3.0, 3.5, 1.0, True),
    MarketSpec("bithumb", "BTC/KRW", "BTC", "KRW", 1.3e8, 3.0e4, 1.0, 1.2, 1.0, True),
    MarketSpec("bithumb", "ETH/KRW", "ETH", "KRW", 6.0e7, 2.0e4, 1.5, 1.8, 1.0, True),
    MarketSpec("binance", "BTC/USDT", "BTC", "USDT", 1.5e9, 2.5e5, 0.01, 0.05, 0.01, False),
    MarketSpec("binance", "ETH/USDT", "ETH", "USDT", 8.0e8, 1.5e5, 0.02, 0.1, 0.01, False),
)


@dataclass(frozen=True)
class SimParams:
    # ---------------------------------------------------------------- calendar
    # Anchor path range: every UTC day in [origin, horizon] can be generated; others raise ValueError.
    origin: date = date(2015, 1, 1)
    horizon: date = date(2035, 12, 31)

    # ---------------------------------------------------------------- BTC / ETH (Binance, USDT)
    # Log-linear trend through historical cycle points (USDT), so that any date has a realistic level;
    # after 2026 a gentle drift. The simulated price wanders around it (see price_reversion_half_life_days).
    btc_trend: Knots = (
        ("2015-01-01", 300.0), ("2016-01-01", 430.0), ("2017-01-01", 1000.0), ("2017-12-15", 15000.0),
        ("2018-12-15", 3500.0), ("2019-06-30", 10000.0), ("2020-03-15", 6000.0), ("2020-12-31", 29000.0),
        ("2021-11-10", 64000.0), ("2022-11-20", 16500.0), ("2023-12-31", 42000.0), ("2024-03-14", 70000.0),
        ("2024-12-17", 104000.0), ("2025-10-06", 120000.0), ("2026-06-30", 105000.0),
        ("2030-01-01", 150000.0), ("2035-12-31", 250000.0),
    )  # fmt: skip
    eth_trend: Knots = (
        ("2015-01-01", 1.0), ("2016-06-15", 18.0), ("2017-01-01", 8.0), ("2018-01-13", 1300.0),
        ("2018-12-15", 90.0), ("2020-03-15", 120.0), ("2021-01-01", 730.0), ("2021-11-10", 4700.0),
        ("2022-06-18", 1000.0), ("2023-12-31", 2300.0), ("2024-03-12", 4000.0), ("2025-04-09", 1500.0),
        ("2025-08-24", 4600.0), ("2026-06-30", 3500.0), ("2030-01-01", 6000.0), ("2035-12-31", 10000.0),
    )  # fmt: skip
    # Log deviation from trend mean-reverts with this half-life: long enough that the path looks like a
    # random walk over weeks (the drift is < 0.2 %/day against 3 %/day vol), short enough that levels
    # stay realistic (stationary deviation sd ~ daily_vol / sqrt(2 ln2 / half_life) ~ 0.36 in log).
    price_reversion_half_life_days: float = 180.0
    # GARCH(1,1) on daily BTC returns: long-run daily vol 3.2 % (BTC realised vol 2017-2025 is 2.5-4 %
    # a day); alpha/beta are the usual daily crypto estimates (persistence 0.98, half-life ~35 days).
    btc_daily_vol: float = 0.032
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    # Cap on the daily vol so that a run of t-shocks cannot make the GARCH variance explode.
    max_daily_vol: float = 0.15
    # Student-t degrees of freedom of price shocks (daily and minute): crypto returns have
    # excess kurtosis of 5-10; nu=4 gives fat but finite-variance tails.
    price_t_dof: float = 4.0
    # ETH/BTC: return correlation ~0.8 and ~1.3x the volatility (2019-2025 daily data).
    eth_corr: float = 0.80
    eth_vol_ratio: float = 1.30

    # ---------------------------------------------------------------- USD/KRW
    # Trend through historical USD/KRW turning points; deviations revert with a 60-day half-life.
    fx_trend: Knots = (
        ("2015-01-01", 1100.0), ("2015-09-01", 1190.0), ("2016-02-25", 1238.0), ("2016-09-01", 1110.0),
        ("2016-12-28", 1210.0), ("2018-04-01", 1065.0), ("2019-08-13", 1220.0), ("2020-03-19", 1285.0),
        ("2021-01-01", 1086.0), ("2022-10-25", 1440.0), ("2023-02-01", 1230.0), ("2023-10-04", 1360.0),
        ("2024-04-01", 1350.0), ("2024-12-27", 1470.0), ("2025-07-01", 1355.0), ("2025-12-01", 1470.0),
        ("2026-06-30", 1430.0), ("2035-12-31", 1350.0),
    )  # fmt: skip
    fx_reversion_half_life_days: float = 60.0
    # USD/KRW daily vol ~0.45 % on trading days (2015-2025 realised); on weekends the onshore market is
    # closed and only thin offshore quotes move, so vol is a quarter of that.
    fx_daily_vol: float = 0.0045
    fx_weekend_vol_ratio: float = 0.25
    # FX shocks are fat-tailed too (intervention days, risk-off gaps).
    fx_t_dof: float = 5.0

    # ---------------------------------------------------------------- premium regimes (Markov, daily)
    # Target premium level per regime (calm, normal, euphoric, discount): 2019/2026 sat near 0-0.5 %,
    # 2022-2025 around 1.5-2.5 %, the 2017-18/2021/2024 spikes 8-15 % (up to 50 %+), discounts ~ -1.5 %.
    regime_level: tuple[float, ...] = (0.003, 0.02, 0.11, -0.015)
    # Daily shock sd of the AR(1) residual per regime: gives yearly sds ~1 pp (calm), ~1.5-2 pp (normal),
    # ~5 pp (euphoric), matching the per-year sds of the daily premium in market-facts.md.
    regime_resid_vol: tuple[float, ...] = (0.003, 0.006, 0.018, 0.005)
    # Stationary sd of the intraday transient per regime (sets the sd of 1-hour changes: ~0.35 pp normal).
    regime_transient_sd: tuple[float, ...] = (0.0025, 0.0045, 0.012, 0.005)
    # Daily transition matrix (rows from, columns to). Expected stays: calm ~125 d, normal ~87 d,
    # euphoric ~33 d, discount ~25 d. With the momentum boost below, the long-run shares come out near
    # 30/55/9/6 % (the real 2017-2026 sample has euphoric spells in 2017-18, 2021 and 2024).
    regime_transition: tuple[tuple[float, ...], ...] = (
        (0.9920, 0.0060, 0.0000, 0.0020),
        (0.0040, 0.9885, 0.0050, 0.0025),
        (0.0000, 0.0260, 0.9700, 0.0040),
        (0.0150, 0.0250, 0.0000, 0.9600),
    )
    # Entries into euphoria (and exits from it) scale with exp(boost * 30-day BTC log return): the real
    # spikes all came with rallies (late 2017, early 2021, March 2024); discounts with sell-offs.
    regime_momentum_boost: float = 2.0
    momentum_window_days: int = 30
    # Regime at the origin day.
    initial_regime: int = NORMAL
    # The premium level glides to the regime's level with this daily AR factor (~1 week half-life),
    # so regime switches show as fast but not instantaneous moves.
    level_glide: float = 0.90
    # Daily AR(1) of the premium residual: 0.95 is the measured daily AR(1) (half-life ~14 days).
    resid_ar: float = 0.95
    # Student-t dof of premium shocks: daily premium changes have excess kurtosis well above 3.
    premium_t_dof: float = 3.5
    # Daily probability of a premium jump per regime, and its scale (t-distributed, symmetric): events
    # like exchange deposit halts, listings or regulatory headlines move the premium 1-3 pp in minutes.
    jump_prob: tuple[float, ...] = (0.01, 0.03, 0.08, 0.04)
    jump_scale: tuple[float, ...] = (0.004, 0.008, 0.025, 0.008)
    # Premium response to log USD/KRW moves. KRW prices are sticky: a 1 % won sell-off first lowers the
    # premium by ~0.9 pp (slow 0.5 that decays with resid_ar, fast 0.4 that decays with the transient).
    fx_beta_slow: float = 0.5
    fx_beta_fast: float = 0.4
    # Hard bounds of the slow premium (the transient can add a little): the real daily premium stayed
    # in [-6.4 %, +57.6 %] over 2017-2026.
    premium_bounds: tuple[float, float] = (-0.065, 0.58)

    # ---------------------------------------------------------------- Korean retail flow (latent)
    # Standardised AR(1) with regime-dependent mean: retail crowds in during euphoria, leaves in
    # discounts. Half-life ~6.6 days (daily AR 0.9), typical of Upbit volume surges.
    flow_ar: float = 0.90
    regime_flow_mean: tuple[float, ...] = (-0.4, 0.0, 1.5, -0.8)
    # Premium added per unit of flow (0.4 pp per sd) and log-volume of Korean venues per unit of flow.
    flow_premium_beta: float = 0.004
    flow_volume_beta: float = 0.35

    # ---------------------------------------------------------------- intraday premium parts
    # Transient: mean-reverting with a 2-hour half-life (hourly AR(1) of the total premium 0.995 comes
    # from the slow part; the 1-hour change sd of ~0.3-0.7 pp from this part).
    transient_half_life_min: float = 120.0
    transient_t_dof: float = 3.0
    # Intraday premium jumps (into the transient, so they decay within hours), per day and regime.
    transient_jump_rate: tuple[float, ...] = (0.3, 1.0, 3.0, 1.0)
    transient_jump_scale: tuple[float, ...] = (0.002, 0.004, 0.012, 0.004)
    # ETH premium = BTC premium + spread; the spread is an AR(1) (daily 0.8) with sd 0.4 pp: the hourly
    # ETH and BTC premium stats in market-facts.md are nearly identical.
    eth_spread_ar: float = 0.80
    eth_spread_sd: float = 0.004
    # Plus a fast ETH-only part (1-hour half-life, sd 0.15 pp) so that hourly ETH and BTC premium changes
    # are highly but not perfectly correlated (~0.9).
    eth_fast_sd: float = 0.0015
    eth_fast_half_life_min: float = 60.0
    # Upbit USDT/KRW premium = beta * BTC premium + own AR(1): in 2021/2024 USDT/KRW traded at a
    # premium of about 0.3-0.5x the BTC premium, so the USDT-based kimchi premium is smaller and calmer.
    usdt_premium_beta: float = 0.40
    usdt_resid_ar: float = 0.90
    usdt_resid_sd: float = 0.003
    # Bithumb minus Upbit premium: slow AR(1) (daily 0.7, sd 0.2 pp) plus fast noise (30-min half-life,
    # sd 0.1 pp): the two venues stay within a few tenths of a percent of each other.
    bithumb_basis_ar: float = 0.70
    bithumb_basis_sd: float = 0.002
    bithumb_fast_sd: float = 0.001
    bithumb_fast_half_life_min: float = 30.0

    # ---------------------------------------------------------------- intraday volatility and volume
    # Log intraday vol multiplier: OU with 1-hour half-life and sd 0.5 (volatility bursts last tens of
    # minutes to hours; minute |returns| autocorrelate for hours).
    vol_mult_half_life_min: float = 60.0
    vol_mult_sd: float = 0.5
    # Weekend crypto variance and volume are ~30 % lower (institutional desks off).
    weekend_crypto_activity: float = 0.7
    # Volume noise (lognormal sd per minute) and elasticity of volume to (0.4 + |return| / expected):
    # busy minutes are the ones that move (volume-volatility correlation of minute bars ~0.5).
    volume_noise_sd: float = 0.6
    volume_vol_elasticity: float = 0.6

    # ---------------------------------------------------------------- order books
    # Level sizes grow ~15 % per level (deeper levels hold more) with lognormal noise sd 0.7.
    book_size_growth: float = 1.15
    book_size_noise_sd: float = 0.7
    # Half-spread noise (lognormal sd) and its elasticity to the minute volatility (spreads widen in
    # volatile minutes).
    spread_noise_sd: float = 0.3
    spread_vol_elasticity: float = 0.5
    # Order-flow imbalance: AR(1) with a 30 s half-life; sizes are scaled by (1 +- 0.6 tanh(imbalance)).
    imbalance_half_life_s: float = 30.0
    imbalance_strength: float = 0.6
    # Mid noise inside a minute (fraction of the minute's vol) and its correlation time.
    mid_noise_frac: float = 0.5
    mid_noise_corr_s: float = 10.0

    markets: tuple[MarketSpec, ...] = field(default=DEFAULT_MARKETS)

    # ---------------------------------------------------------------- on-chain
    # BTC hash rate (EH/s) trend from public hash-rate charts; ETH "TH/s-equivalent" is simulated only.
    btc_hash_trend: Knots = (
        ("2015-01-01", 0.35), ("2017-01-01", 2.5), ("2018-06-01", 35.0), ("2020-01-01", 110.0),
        ("2021-07-01", 95.0), ("2022-06-01", 210.0), ("2024-04-01", 600.0), ("2025-06-01", 900.0),
        ("2026-06-30", 1100.0), ("2035-12-31", 3000.0),
    )  # fmt: skip
    eth_hash_trend: Knots = (
        ("2015-01-01", 1.0), ("2017-01-01", 6.0), ("2018-06-01", 250.0), ("2020-01-01", 180.0),
        ("2022-06-01", 900.0), ("2035-12-31", 2000.0),
    )  # fmt: skip
    # Daily hash-rate log noise: OU with 10-day half-life, sd 4 % (miner churn, estimation noise).
    hash_noise_sd: float = 0.04
    hash_noise_half_life_days: float = 10.0
    # Difficulty retarget period (BTC: 2016 blocks ~ 14 days) and the block time that maps hash rate to
    # difficulty (BTC 600 s; ETH pre-merge 13 s).
    difficulty_epoch_days: int = 14
    # Realised price = EMA of the daily price with this half-life (MVRV = price / realised price,
    # which lands in the usual 0.7-3.5 band).
    realized_price_half_life_days: float = 200.0
    # Exchange-flow notional per 10-minute window (USD), and its sensitivity to the premium (log-flow
    # per unit premium: +10 pp premium ~ x2.2 inflow to Korean venues; outflows fall at half that rate),
    # to retail flow and to the window's |return| / expected (coins move to exchanges on big moves).
    exchange_flow_usd: tuple[float, ...] = (4.0e6, 3.0e6)  # BTC, ETH
    inflow_premium_beta: float = 8.0
    inflow_flow_beta: float = 0.3
    inflow_move_beta: float = 0.25
    # Lognormal noise of 10-minute exchange flows (single large transfers dominate windows).
    exchange_flow_noise_sd: float = 0.35
    # Mean whale transfers per 10 minutes (BTC, ETH), their log sensitivity to |return| / expected and to
    # a positive premium (arbitrage transfers), and active addresses per 10 minutes.
    whale_rate: tuple[float, ...] = (12.0, 18.0)
    whale_move_beta: float = 0.35
    whale_premium_beta: float = 3.0
    active_addresses: tuple[float, ...] = (6000.0, 3500.0)
    # Intraday noise of the 10-minute hash-rate estimate (hash rate is inferred from block times).
    hash_intraday_noise_sd: float = 0.03
    # NVT ratio around 45 (BTC) / 35 (ETH): log OU, daily sd 5 %, half-life 20 days; busier retail
    # flow means more transaction volume and a lower NVT.
    nvt_level: tuple[float, ...] = (45.0, 35.0)
    nvt_vol: float = 0.05
    nvt_half_life_days: float = 20.0

    # ---------------------------------------------------------------- macro (daily closes)
    kospi_trend: Knots = (
        ("2015-01-01", 1950.0), ("2018-01-29", 2580.0), ("2019-08-06", 1920.0), ("2020-03-19", 1460.0),
        ("2021-06-25", 3300.0), ("2022-09-30", 2150.0), ("2024-07-11", 2890.0), ("2024-12-09", 2360.0),
        ("2025-10-31", 4000.0), ("2026-06-30", 3800.0), ("2035-12-31", 4500.0),
    )  # fmt: skip
    # KOSDAQ / KOSPI ratio around 0.32 (e.g. 800 / 2500); KOSDAQ shocks load 0.85 on KOSPI's.
    kosdaq_ratio: float = 0.32
    kosdaq_kospi_corr: float = 0.85
    gold_trend: Knots = (
        ("2015-01-01", 1200.0), ("2015-12-17", 1050.0), ("2019-06-01", 1300.0), ("2020-08-06", 2050.0),
        ("2022-09-28", 1630.0), ("2023-12-31", 2060.0), ("2025-04-21", 3400.0), ("2025-10-20", 4300.0),
        ("2026-06-30", 4200.0), ("2035-12-31", 5000.0),
    )  # fmt: skip
    dxy_trend: Knots = (
        ("2015-01-01", 90.0), ("2015-03-13", 100.0), ("2017-01-03", 103.0), ("2018-02-15", 88.5),
        ("2020-03-19", 103.0), ("2021-05-25", 89.8), ("2022-09-27", 114.0), ("2023-07-14", 99.6),
        ("2025-01-13", 110.0), ("2025-07-01", 96.8), ("2035-12-31", 98.0),
    )  # fmt: skip
    us2y_trend: Knots = (
        ("2015-01-01", 0.6), ("2018-11-08", 2.95), ("2020-04-01", 0.2), ("2021-12-31", 0.73),
        ("2023-03-08", 5.05), ("2024-09-24", 3.55), ("2025-06-30", 3.75), ("2026-06-30", 3.4),
        ("2035-12-31", 3.2),
    )  # fmt: skip
    us10y_trend: Knots = (
        ("2015-01-01", 2.1), ("2018-11-08", 3.24), ("2020-08-04", 0.52), ("2021-12-31", 1.52),
        ("2023-10-19", 4.99), ("2024-09-16", 3.62), ("2025-01-13", 4.79), ("2026-06-30", 4.2),
        ("2035-12-31", 4.0),
    )  # fmt: skip
    # Index/metal log OU around their trends: (daily vol, reversion half-life in days). Daily vols are
    # the 2015-2025 realised: KOSPI 1.0 %, KOSDAQ 1.3 %, DXY 0.4 %, gold 0.9 %, silver 1.7 %.
    kospi_vol: float = 0.010
    kosdaq_vol: float = 0.013
    dxy_vol: float = 0.004
    gold_vol: float = 0.009
    silver_vol: float = 0.017
    macro_half_life_days: float = 250.0
    # KOSPI shocks load on the Korean retail-flow shocks (risk appetite) and on BTC's shock.
    kospi_flow_loading: float = 0.35
    kospi_btc_loading: float = 0.20
    # DXY shocks correlate with USD/KRW shocks (a strong dollar weakens the won).
    dxy_fx_loading: float = 0.5
    # Silver = gold / ratio; the ratio is a log OU around 80 (half-life 120 days) whose shocks make
    # silver's beta to gold 1.5 and its vol silver_vol (gold-silver daily correlation ~0.8).
    gold_silver_ratio: float = 80.0
    gold_silver_half_life_days: float = 120.0
    silver_gold_beta: float = 1.5
    # VIX: log OU around 16 (half-life ~8 days, daily log sd 7 %), shifted by 0.5 x log(BTC GARCH vol /
    # long-run vol) so that crypto vol regimes and equity fear move together; loads -0.4 on BTC shocks.
    vix_level: float = 16.0
    vix_ar: float = 0.92
    vix_vol: float = 0.07
    vix_crypto_vol_beta: float = 0.5
    vix_btc_loading: float = -0.4
    vix_bounds: tuple[float, float] = (9.0, 85.0)
    # Treasury yields (percent): additive OU, daily change sd 7 bp (2y) / 6 bp (10y), correlated 0.8.
    us2y_vol: float = 0.07
    us10y_vol: float = 0.06
    yield_corr: float = 0.8
    yield_floor: float = 0.05
    # Minutes between a market close and the publication of its value (index providers, LBMA, Treasury).
    macro_publish_lag_min: int = 5

    # ---------------------------------------------------------------- news
    # Expected headlines per day by regime: quiet markets ~25, euphoria and crashes ~55.
    news_rate: tuple[float, ...] = (25.0, 35.0, 55.0, 45.0)
    # Tone score = regime bias + move weight x BTC move z-score (since the previous day's 00:00)
    # + premium weight x premium change over the same span + noise; > threshold reads positive,
    # < -threshold negative, else neutral. Sized so euphoric days read ~3/4 positive and discount
    # days ~70 % negative headlines.
    news_regime_tone: tuple[float, ...] = (0.0, 0.2, 1.3, -1.1)
    news_move_weight: float = 0.8
    news_premium_weight: float = 25.0
    news_tone_noise_sd: float = 0.8
    news_tone_threshold: float = 0.5
    # Share of headlines that come with a short text (the rest have text = null).
    news_text_share: float = 0.6

    def __post_init__(self) -> None:
        n = len(REGIME_NAMES)
        per_regime = (
            "regime_level", "regime_resid_vol", "regime_transient_sd", "jump_prob", "jump_scale",
            "regime_flow_mean", "transient_jump_rate", "transient_jump_scale", "news_rate", "news_regime_tone",
        )  # fmt: skip
        for name in per_regime:
            if len(getattr(self, name)) != n:
                raise ValueError(f"SimParams.{name} needs one value per regime {REGIME_NAMES}")
        if len(self.regime_transition) != n or any(len(r) != n for r in self.regime_transition):
            raise ValueError("SimParams.regime_transition must be a 4x4 matrix")
        for row in self.regime_transition:
            if abs(sum(row) - 1.0) > 1e-9 or min(row) < 0:
                raise ValueError(f"SimParams.regime_transition rows must be probabilities, got {row}")
        if self.horizon <= self.origin:
            raise ValueError("SimParams.horizon must be after origin")
