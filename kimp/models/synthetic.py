"""A seeded synthetic market whose premium direction IS learnable, for tests and benchmarks of the models.

Per coin, a hidden driver x follows a slow AR(1) (half-life about two hours on 1-minute bars) and the
premium drifts by ``beta * x`` per bar plus noise. The driver is observed with noise as feature ``f_signal``
at the bar's close, so the feature is honestly known at ts + interval and predicts the coming hour. The
other features are noise, a few lags of the premium, and an all-null family (as the feature store has).
The noise is tuned so that, with the default flat band (0.3 pp) and a 1-hour horizon, the three classes are
roughly balanced.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
from scipy.signal import lfilter

from kimp.market_data.schemas import PREMIUM, UTC_TS
from kimp.timeutil import day_start


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
