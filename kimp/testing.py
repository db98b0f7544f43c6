"""Seeded synthetic data for tests and benchmarks, never for research: one module, which nothing in the
product imports.

**Raw tables** (:func:`synthetic_inputs`, :func:`simulated_source_inputs`): the raw tables in their exact
schemas, fast. The simulated market source (kimp.market_data.simulated) is realistic but takes ~1.5 s per
day, ~9 minutes for a year; this generator builds a year of 1-minute bars with numpy in seconds. Prices
follow a random walk, the premium an Ornstein-Uhlenbeck process around 3%; the values are plausible, not
calibrated: use them for speed and honesty checks of the features.

**A market whose premium direction IS learnable** (:func:`synthetic_market`, :func:`wide_features`,
:func:`alter_after`), for the models. Per coin, a hidden driver x follows a slow AR(1) (half-life about two
hours on 1-minute bars) and the premium drifts by ``beta * x`` per bar plus noise. The driver is observed
with noise as feature ``f_signal`` at the bar's close, so the feature is honestly known at ts + interval
and predicts the coming hour. The other features are noise, a few lags of the premium, and an all-null
family (as the feature store has). The noise is tuned so that, with the default flat band (0.3 pp) and a
1-hour horizon, the three classes are roughly balanced.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
from scipy.signal import lfilter

from kimp.features.types import FeatureInputs
from kimp.market_data.schemas import (
    BOOK_LEVELS,
    CANDLES,
    FX,
    MACRO,
    MACRO_SERIES,
    NEWS,
    NEWS_SENTIMENT,
    ONCHAIN,
    ORDERBOOK,
    PREMIUM,
    UTC_TS,
)
from kimp.timeutil import day_start

# --- raw tables for the features ---------------------------------------------------------------------

_START_PRICE = {"BTC": 60_000.0, "ETH": 3_000.0}
_HEADLINES = (
    "Bitcoin rallies as inflows surge",
    "Ether slumps after exchange hack",
    "Kimchi premium climbs on strong Korean demand",
    "Regulators warn of crypto risk",
    "BTC holds steady ahead of data",
    "Ethereum upgrade boosts sentiment",
    "Crypto market falls on fear of crackdown",
    "Upbit volume jumps to record high",
)


def _ou(rng: np.random.Generator, n: int, mean: float, sd_step: float, phi: float) -> np.ndarray:
    """AR(1) path x_t = mean + phi (x_(t-1) - mean) + e, vectorized through an exact IIR filter."""
    shocks = rng.normal(0.0, sd_step, n)
    return mean + lfilter([1.0], [1.0, -phi], shocks)


def synthetic_inputs(
    start: datetime,
    days: int,
    *,
    interval_s: int = 60,
    coins: tuple[str, ...] = ("BTC", "ETH"),
    seed: int = 7,
    orderbook_every_s: int | None = 60,
    kr_venues: tuple[str, ...] = ("upbit", "bithumb"),
) -> FeatureInputs:
    """All seven raw tables for ``days`` days from ``start`` (UTC midnight) at ``interval_s`` bars."""
    rng = np.random.default_rng(seed)
    n = days * 86_400 // interval_s
    ts = pl.datetime_range(
        start,
        start + timedelta(days=days),
        interval=f"{interval_s}s",
        closed="left",
        time_unit="us",
        time_zone="UTC",
        eager=True,
    )
    scale = np.sqrt(interval_s / 60)
    usdkrw = 1350.0 * np.exp(np.cumsum(rng.normal(0, 0.00005 * scale, n)))
    usdt_krw = usdkrw * (1 + _ou(rng, n, 0.002, 0.0002 * scale, 0.999))
    candles, premium, books = [], [], []

    def bars(venue: str, symbol: str, close: np.ndarray, volume: np.ndarray) -> pl.DataFrame:
        base, quote = symbol.split("/")
        opens = np.r_[close[0], close[:-1]]
        wiggle = np.abs(rng.normal(0, 0.0003 * scale, (2, n)))
        return pl.DataFrame(
            {
                "ts": ts,
                "venue": venue,
                "symbol": symbol,
                "base": base,
                "quote": quote,
                "interval_s": np.full(n, interval_s, np.int32),
                "open": opens,
                "high": np.maximum(opens, close) * (1 + wiggle[0]),
                "low": np.minimum(opens, close) * (1 - wiggle[1]),
                "close": close,
                "volume": volume,
                "quote_volume": close * volume,
            }
        )

    candles.append(bars("upbit", "USDT/KRW", usdt_krw, rng.lognormal(10, 1, n)))
    for coin in coins:
        bn = _START_PRICE.get(coin, 100.0) * np.exp(np.cumsum(rng.normal(0, 0.0008 * scale, n)))
        bn_vol = rng.lognormal(1.0, 1.0, n) * scale * (60_000.0 / _START_PRICE.get(coin, 100.0))
        candles.append(bars("binance", f"{coin}/USDT", bn, bn_vol))
        prem = _ou(rng, n, 0.03, 0.0003 * scale, 0.9995)
        for i, venue in enumerate(kr_venues):
            kr = bn * usdkrw * (1 + prem + i * _ou(rng, n, 0.001, 0.0001 * scale, 0.99))
            kr_vol = bn_vol * rng.lognormal(-0.5, 0.5, n)
            candles.append(bars(venue, f"{coin}/KRW", kr, kr_vol))
            premium.append(
                pl.DataFrame(
                    {
                        "ts": ts,
                        "coin": coin,
                        "kr_venue": venue,
                        "interval_s": np.full(n, interval_s, np.int32),
                        "premium_fx": kr / (bn * usdkrw) - 1,
                        "premium_usdt": kr / (bn * usdt_krw) - 1,
                        "kr_close": kr,
                        "binance_close": bn,
                        "usdt_krw_close": usdt_krw,
                        "usdkrw": usdkrw,
                        "fx_published_at": ts.dt.offset_by(f"{interval_s}s"),
                        "stale": np.zeros(n, bool),
                    }
                )
            )
            if orderbook_every_s and i == 0:
                books.append(_books(rng, venue, f"{coin}/KRW", ts, kr, interval_s, orderbook_every_s))
        if orderbook_every_s:
            books.append(_books(rng, "binance", f"{coin}/USDT", ts, bn, interval_s, orderbook_every_s))
    fx = pl.DataFrame(
        {
            "ts": ts,
            "series": "intraday",
            "interval_s": np.full(n, interval_s, np.int32),
            "published_at": ts.dt.offset_by(f"{interval_s}s"),
            "open": usdkrw,
            "high": usdkrw,
            "low": usdkrw,
            "close": usdkrw,
            "source": "synthetic",
        }
    )
    day_ts = pl.datetime_range(
        start,
        start + timedelta(days=days),
        interval="1d",
        closed="left",
        time_unit="us",
        time_zone="UTC",
        eager=True,
    )
    per_day = 86_400 // interval_s
    fixing = pl.DataFrame(
        {
            "ts": day_ts,
            "series": "fixing",
            "interval_s": np.full(days, 86_400, np.int32),
            "published_at": day_ts.dt.offset_by("6h30m"),
            "open": None,
            "high": None,
            "low": None,
            "close": usdkrw[::per_day][:days],
            "source": "synthetic",
        }
    )
    return FeatureInputs(
        premium=pl.concat(premium).select([pl.col(c).cast(t) for c, t in PREMIUM.items()]),
        candles=pl.concat(candles).select([pl.col(c).cast(t) for c, t in CANDLES.items()]),
        fx=pl.concat([fx, fixing], how="vertical_relaxed").select([pl.col(c).cast(t) for c, t in FX.items()]),
        orderbook=(
            pl.concat(books).select([pl.col(c).cast(t) for c, t in ORDERBOOK.items()]) if books else None
        ),
        onchain=_onchain(rng, start, days, coins),
        macro=_macro(rng, start, days),
        news=(news := _news(rng, start, days)),
        news_sentiment=_news_sentiment(news, seed),
    )


def _books(
    rng: np.random.Generator,
    venue: str,
    symbol: str,
    bar_ts: pl.Series,
    close: np.ndarray,
    interval_s: int,
    every_s: int,
) -> pl.DataFrame:
    start = bar_ts[0]
    span_s = len(bar_ts) * interval_s
    snap = pl.datetime_range(
        start,
        start + timedelta(seconds=span_s),
        interval=f"{every_s}s",
        closed="left",
        time_unit="us",
        time_zone="UTC",
        eager=True,
    )
    m = len(snap)
    # mid = close of the last bar closed at or before the snapshot (no look-ahead in the fake book either)
    idx = np.clip((np.arange(m) * every_s) // interval_s - 1, 0, len(close) - 1)
    mid = close[idx] * (1 + rng.normal(0, 0.0001, m))
    half = mid * rng.uniform(0.00002, 0.0003, m)
    tick = mid * 0.00005
    cols: dict[str, object] = {"ts": snap, "venue": venue, "symbol": symbol}
    sizes = rng.lognormal(0.0, 0.8, (2, BOOK_LEVELS, m))
    for lvl in range(1, BOOK_LEVELS + 1):
        cols[f"bid_px_{lvl}"] = mid - half - (lvl - 1) * tick
        cols[f"ask_px_{lvl}"] = mid + half + (lvl - 1) * tick
        cols[f"bid_sz_{lvl}"] = sizes[0, lvl - 1]
        cols[f"ask_sz_{lvl}"] = sizes[1, lvl - 1]
    return pl.DataFrame(cols)


def _onchain(rng: np.random.Generator, start: datetime, days: int, coins: tuple[str, ...]) -> pl.DataFrame:
    ts = pl.datetime_range(
        start,
        start + timedelta(days=days),
        interval="10m",
        closed="left",
        time_unit="us",
        time_zone="UTC",
        eager=True,
    )
    m = len(ts)
    frames = []
    for coin in coins:
        frames.append(
            pl.DataFrame(
                {
                    "ts": ts,
                    "published_at": ts.dt.offset_by("10m"),
                    "coin": coin,
                    "exchange_inflow": rng.lognormal(4, 0.5, m),
                    "exchange_outflow": rng.lognormal(4, 0.5, m),
                    "whale_tx_count": rng.poisson(3, m),
                    "active_addresses": rng.poisson(9000, m),
                    "hash_rate": 500 * np.exp(np.cumsum(rng.normal(0, 0.001, m))),
                    "difficulty": np.full(m, 8e13),
                    "mvrv": 1.5 * np.exp(np.cumsum(rng.normal(0, 0.001, m))),
                    "nvt": 50 * np.exp(np.cumsum(rng.normal(0, 0.002, m))),
                }
            )
        )
    return pl.concat(frames).select([pl.col(c).cast(t) for c, t in ONCHAIN.items()])


def _macro(rng: np.random.Generator, start: datetime, days: int) -> pl.DataFrame:
    day_ts = pl.datetime_range(
        start,
        start + timedelta(days=days),
        interval="1d",
        closed="left",
        time_unit="us",
        time_zone="UTC",
        eager=True,
    )
    weekdays = day_ts.filter(day_ts.dt.weekday() <= 5)
    frames = []
    for i, series in enumerate(MACRO_SERIES):
        obs = weekdays.dt.offset_by(f"{6 + 2 * i}h")
        frames.append(
            pl.DataFrame(
                {
                    "ts": obs,
                    "series": series,
                    "value": (100.0 + 10 * i) * np.exp(np.cumsum(rng.normal(0, 0.01, len(obs)))),
                    "published_at": obs.dt.offset_by("5m"),
                }
            )
        )
    return pl.concat(frames).select([pl.col(c).cast(t) for c, t in MACRO.items()])


def _news(rng: np.random.Generator, start: datetime, days: int) -> pl.DataFrame:
    k = 40 * days
    offsets = np.sort(rng.uniform(0, days * 86_400, k))
    ts = pl.Series([start + timedelta(seconds=float(s)) for s in offsets]).cast(pl.Datetime("us", "UTC"))
    return pl.DataFrame(
        {
            "ts": ts,
            "source": "synthetic",
            "headline": [_HEADLINES[i] for i in rng.integers(0, len(_HEADLINES), k)],
            "text": None,
        }
    ).select([pl.col(c).cast(t) for c, t in NEWS.items()])


def _news_sentiment(news: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Each headline scored with Dirichlet probabilities leaning to its word-list tone (own generator, so
    the other tables do not change): plausible input for the sentiment family, not a model's output."""
    from kimp.features.inputs import news_tone

    rng = np.random.default_rng(seed + 15)
    tone = news_tone(news)["tone"].to_numpy()
    alpha = np.stack([1.0 + 2.0 * (tone < 0), np.full(len(tone), 1.5), 1.0 + 2.0 * (tone > 0)], axis=1)
    p = np.array([rng.dirichlet(a) for a in alpha]).reshape(-1, 3)
    return pl.DataFrame(
        {
            "ts": news["ts"],
            "source": news["source"],
            "headline": news["headline"],
            "p_neg": p[:, 0],
            "p_neu": p[:, 1],
            "p_pos": p[:, 2],
            "score": p[:, 2] - p[:, 0],
            "model": "synthetic",
            "version": "",
        }
    ).select([pl.col(c).cast(t) for c, t in NEWS_SENTIMENT.items()])


def simulated_source_inputs(days: list[date], *, seed: int = 7) -> FeatureInputs:
    """Feature inputs for ``days`` from the simulated market source (every raw table, 5-second books),
    with the premium computed per day as the ``kimchi_premium`` asset does."""
    from kimp.market_data.source import build_source
    from kimp.premium import compute_premium

    src = build_source("simulated", seed=seed)
    parts: dict[str, list[pl.DataFrame]] = {}
    for d in days:
        c = {v: src.candles(v, d) for v in ("upbit", "bithumb", "binance")}
        fx = src.fx(d)
        tables = {
            "premium": compute_premium(
                {"upbit": c["upbit"], "bithumb": c["bithumb"]}, c["binance"], fx, day=d
            ),
            "candles": pl.concat(list(c.values())),
            "fx": fx,
            "orderbook": src.orderbook(d),
            "onchain": src.onchain(d),
            "macro": src.macro(d),
            "news": src.news(d),
        }
        for k, v in tables.items():
            parts.setdefault(k, []).append(v)
    return FeatureInputs(**{k: pl.concat(v) for k, v in parts.items()})


# --- a learnable market for the models ---------------------------------------------------------------


def synthetic_market(
    start: date,
    days: int,
    *,
    n_features: int = 40,
    n_null_features: int = 4,
    interval_s: int = 60,
    coins: tuple[str, ...] = ("BTC", "ETH"),
    signal_strength: float = 1.0,
    seed: int = 7,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(features, premium): features has ts, coin and Float32 columns; premium follows the PREMIUM schema."""
    rng = np.random.default_rng(seed)
    n = days * 86_400 // interval_s
    t0 = day_start(start)
    ts = pl.datetime_range(
        t0,
        t0 + timedelta(seconds=interval_s * (n - 1)),
        interval=f"{interval_s}s",
        time_zone="UTC",
        eager=True,
    ).cast(UTC_TS)
    per_minute = interval_s / 60.0
    phi = 0.995**per_minute
    feature_parts, premium_parts = [], []
    for coin in coins:
        shocks = rng.standard_normal(n) * np.sqrt(1 - phi**2)
        shocks[0] = rng.standard_normal()  # start in the stationary distribution (unit variance)
        x = lfilter([1.0], [1.0, -phi], shocks)
        drift = 0.00012 * signal_strength * x * per_minute
        noise = rng.standard_normal(n) * 0.0003 * np.sqrt(per_minute)
        premium = 0.03 + np.cumsum(drift + noise)
        cols: dict[str, object] = {
            "ts": ts,
            "coin": [coin] * n,
            "f_signal": (x + 0.3 * rng.standard_normal(n)).astype(np.float32),
        }
        for lag in (1, 5, 15, 60):
            past = np.concatenate([np.full(lag, np.nan), premium[:-lag]])
            cols[f"f_premium_change_{lag}"] = (premium - past).astype(np.float32)
        for j in range(n_features - 1 - 4):
            cols[f"f_noise_{j:03d}"] = rng.standard_normal(n).astype(np.float32)
        for j in range(n_null_features):
            cols[f"f_missing_family_{j}"] = np.full(n, np.nan, dtype=np.float32)
        frame = pl.DataFrame(cols).with_columns(
            [pl.col(f"f_missing_family_{j}").fill_nan(None) for j in range(n_null_features)]
        )
        feature_parts.append(frame)
        premium_parts.append(
            pl.DataFrame(
                {
                    "ts": ts,
                    "coin": [coin] * n,
                    "kr_venue": ["upbit"] * n,
                    "interval_s": np.full(n, interval_s, dtype=np.int32),
                    "premium_fx": premium,
                    "premium_usdt": premium - 0.005,
                    "kr_close": np.full(n, 1.0e8),
                    "binance_close": np.full(n, 7.0e4),
                    "usdt_krw_close": np.full(n, 1.38e3),
                    "usdkrw": np.full(n, 1.37e3),
                    "fx_published_at": ts,
                    "stale": np.zeros(n, dtype=bool),
                }
            )
        )
    features = pl.concat(feature_parts).sort(["coin", "ts"])
    premium = (
        pl.concat(premium_parts).select([pl.col(c).cast(t) for c, t in PREMIUM.items()]).sort(["coin", "ts"])
    )
    return features, premium


def wide_features(frame: pl.DataFrame, n_columns: int, *, seed: int = 7) -> pl.DataFrame:
    """Pad a features frame with noise columns up to ``n_columns`` features (for speed benchmarks)."""
    rng = np.random.default_rng(seed)
    have = [c for c in frame.columns if c not in ("ts", "coin")]
    extra = {
        f"f_pad_{j:04d}": rng.standard_normal(frame.height).astype(np.float32)
        for j in range(n_columns - len(have))
    }
    return frame.with_columns([pl.Series(k, v) for k, v in extra.items()])


def alter_after(frame: pl.DataFrame, moment: datetime, *, seed: int = 1) -> pl.DataFrame:
    """Replace every float value at ts >= moment with noise (to prove predictions ignore the future)."""
    rng = np.random.default_rng(seed)
    after = (frame["ts"] >= moment).to_numpy()
    out = []
    for name, dtype in frame.schema.items():
        col = frame[name]
        if dtype in (pl.Float32, pl.Float64) and col.null_count() < frame.height:
            values = col.to_numpy().copy()
            values[after] = rng.standard_normal(int(after.sum())) * 0.05
            col = pl.Series(name, values, dtype=dtype)
        out.append(col)
    return pl.DataFrame(out)
