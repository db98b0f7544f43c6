"""Day indexing, deterministic random streams, trends and intraday activity profiles.

Day index ``i`` is the UTC day ``origin + i``; anchor ``i`` is the state at that day's 00:00 UTC, and
day ``i`` is bridged from anchor ``i`` to anchor ``i + 1``. Minute grids have 1441 points (00:00 to the
next 00:00 inclusive); bar ``m`` spans grid points ``m`` and ``m + 1``.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

import numpy as np

from kimp.market_data.simulated.params import Knots, SimParams

MINUTES = 1440
DAY_MS = 86_400_000
KST_OFFSET_MIN = 9 * 60

# Stream ids for ``np.random.default_rng([seed, stream, ...])``: one per independent source of
# randomness, so that adding draws to one table never changes another table's numbers.
S_ANCHOR_PRICE, S_ANCHOR_PREMIUM, S_ANCHOR_AUX, S_ANCHOR_MACRO, S_ANCHOR_ONCHAIN = 1, 2, 3, 4, 5
S_DAY_PATH, S_DAY_CANDLES, S_DAY_BOOK, S_DAY_ONCHAIN, S_DAY_NEWS = 11, 12, 13, 14, 15


def rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    """A generator that depends only on (seed, stream, *more): days and tables never share draws."""
    return np.random.default_rng([seed, stream, *more])


def n_days(params: SimParams) -> int:
    return (params.horizon - params.origin).days + 1


def day_index(day: date, params: SimParams) -> int:
    """Index of ``day`` in the anchor path; a clear ValueError outside [origin, horizon]."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise TypeError(f"day must be a datetime.date (a UTC day), got {type(day).__name__} {day!r}")
    if day < params.origin or day > params.horizon:
        raise ValueError(
            f"simulated source covers {params.origin} .. {params.horizon}; {day} is outside that range "
            "(change SimParams.origin/horizon to extend it)"
        )
    return (day - params.origin).days


def anchor_weekdays(params: SimParams) -> np.ndarray:
    """Weekday (Mon=0) of every anchor day, origin .. horizon + 1."""
    first = params.origin.weekday()
    return (first + np.arange(n_days(params) + 1)) % 7


def log_trend(knots: Knots, params: SimParams) -> np.ndarray:
    """Log of a piecewise log-linear curve through ``knots``, sampled at every anchor (n_days + 1)."""
    x = np.array([(date.fromisoformat(d) - params.origin).days for d, _ in knots], dtype=np.float64)
    y = np.log(np.array([v for _, v in knots], dtype=np.float64))
    return np.interp(np.arange(n_days(params) + 1, dtype=np.float64), x, y)


def lin_trend(knots: Knots, params: SimParams) -> np.ndarray:
    """A piecewise linear curve through ``knots`` (for yields, which can approach zero)."""
    x = np.array([(date.fromisoformat(d) - params.origin).days for d, _ in knots], dtype=np.float64)
    y = np.array([v for _, v in knots], dtype=np.float64)
    return np.interp(np.arange(n_days(params) + 1, dtype=np.float64), x, y)


def _hourly_to_minutes(weights: list[float], offset_min: int) -> np.ndarray:
    """Per-UTC-minute weights from 24 hourly weights in a local clock ``offset_min`` ahead of UTC,
    linearly interpolated between hour centres so the profile has no steps; normalised to mean 1."""
    local = (np.arange(MINUTES) + offset_min) % MINUTES
    centres = np.arange(26) * 60.0 - 30.0  # hour h is centred at h*60+30; one wrap knot on each side
    w = np.array([weights[-1], *weights, weights[0]], dtype=np.float64)
    prof = np.interp(local + 0.0, centres, w)
    return prof / prof.mean()


# Korean retail activity by KST hour: quiet 2-7 am, a spike at 9 am (Upbit's daily candle resets at
# 09:00 KST and news flow starts), steady through the day and busiest in the evening (after work).
_KST_ACTIVITY = [1.0, 0.8, 0.55, 0.4, 0.3, 0.3, 0.35, 0.5, 0.8, 1.45, 1.25, 1.1,
                 1.0, 1.0, 1.0, 1.0, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.35, 1.25]  # fmt: skip
# Global (Binance) activity by UTC hour: Asia morning, Europe, and the US open (13:30-16 UTC) busiest.
_UTC_ACTIVITY = [1.0, 1.0, 0.95, 0.9, 0.85, 0.8, 0.8, 0.85, 0.95, 1.0, 1.0, 1.0,
                 1.05, 1.25, 1.45, 1.4, 1.25, 1.1, 1.0, 0.95, 0.9, 0.85, 0.85, 0.9]  # fmt: skip
# Korean news flow by KST hour: morning briefings 7-10 am, business hours, thin after midnight.
_KST_NEWS = [0.4, 0.25, 0.15, 0.1, 0.1, 0.15, 0.4, 1.2, 1.7, 1.8, 1.6, 1.4,
             1.1, 1.3, 1.4, 1.4, 1.3, 1.2, 1.0, 0.9, 0.9, 0.8, 0.7, 0.55]  # fmt: skip


@lru_cache(maxsize=1)
def korean_activity() -> np.ndarray:
    return _hourly_to_minutes(_KST_ACTIVITY, KST_OFFSET_MIN)


@lru_cache(maxsize=1)
def global_activity() -> np.ndarray:
    return _hourly_to_minutes(_UTC_ACTIVITY, 0)


@lru_cache(maxsize=1)
def news_activity() -> np.ndarray:
    return _hourly_to_minutes(_KST_NEWS, KST_OFFSET_MIN)


@lru_cache(maxsize=1)
def crypto_vol_profile() -> np.ndarray:
    """Variance weights of crypto price moves per UTC minute: a mix of global and Korean activity."""
    p = 0.7 * global_activity() + 0.3 * korean_activity()
    return p / p.mean()


@lru_cache(maxsize=2)
def fx_vol_profile(weekend: bool) -> np.ndarray:
    """Variance weights of USD/KRW per UTC minute. Weekdays: the onshore Seoul session (09:00-15:30 KST
    = 00:00-06:30 UTC) carries most of the variance, with an opening burst; London/New York hours
    move the offshore NDF less. Weekends: flat (thin offshore quotes only)."""
    m = np.arange(MINUTES)
    if weekend:
        return np.ones(MINUTES)
    w = np.full(MINUTES, 0.35)
    w[(m >= 7 * 60) & (m < 21 * 60)] = 0.8  # London + New York offshore
    w[m < 390] = 2.5  # Seoul session
    w[m < 30] = 5.0  # Seoul open
    return w / w.mean()
