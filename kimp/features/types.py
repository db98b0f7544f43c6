"""The feature store's data types: inputs, config, result and one catalog entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl

# Timeframes of the multi-timeframe families, in seconds. A timeframe finer than the bar interval, or
# not a whole multiple of it, cannot be computed: its columns stay null and `unavailable` says why.
TIMEFRAMES: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}

# Input tables in the order the API documents them.
TABLE_NAMES: tuple[str, ...] = (
    "premium",
    "candles",
    "fx",
    "orderbook",
    "onchain",
    "macro",
    "news",
    "news_sentiment",
)


@dataclass(frozen=True)
class FeatureInputs:
    """Raw tables (schemas in kimp.market_data.schemas); each may span history before ``start``.

    ``premium`` is the base grid and is required; any other table may be None (its families are then
    null and reported in ``FeatureResult.unavailable``).
    """

    premium: pl.DataFrame | None  # PREMIUM schema, both kr venues
    candles: pl.DataFrame | None  # CANDLES schema, all venues concatenated (upbit, bithumb, binance)
    fx: pl.DataFrame | None = None
    orderbook: pl.DataFrame | None = None
    onchain: pl.DataFrame | None = None
    macro: pl.DataFrame | None = None
    news: pl.DataFrame | None = None
    news_sentiment: pl.DataFrame | None = None  # NEWS_SENTIMENT schema: headlines scored by kimp.sentiment

    def table(self, name: str) -> pl.DataFrame | None:
        return getattr(self, name)


@dataclass(frozen=True)
class FeatureConfig:
    """Which features are built. The defaults are the product's feature set (see catalog()).

    - ``kr_venues``: priority order of Korean venues; per coin the first one with premium rows is the
      "kr" venue of every kr_* feature, the next one (if present) feeds the cross-venue spread.
    - ``max_lookback_days``: longest history any feature may need; an indicator whose window would be
      longer is left out of the catalog (e.g. RSI(50) on 1-day bars). Kept <= 14 so that a daily run
      reads at most 14 earlier partitions of 1-minute data.
    - ``garch_fit_days`` / ``garch_refit_days``: GARCH(1,1) parameters are refitted every
      ``garch_refit_days`` days on blocks aligned to 1970-01-01 UTC, each fit using only the
      ``garch_fit_days`` days strictly before its block's first day. A day therefore has the same
      parameters whether it is computed alone or inside a longer run (the partition property).
    - ``garch_window_days``: the conditional-variance filter restarts from the unconditional variance
      this many days back, so that a value depends on a bounded, declared history.
    """

    coins: tuple[str, ...] = ("BTC", "ETH")
    kr_venues: tuple[str, ...] = ("upbit", "bithumb")
    max_lookback_days: int = 14
    garch_fit_days: int = 7
    garch_refit_days: int = 7
    garch_window_days: int = 1
    garch_min_obs: int = 200
    rsi_periods: tuple[int, ...] = (14, 21, 50)
    macd: tuple[int, int, int] = (12, 26, 9)
    bollinger: tuple[int, float] = (20, 2.0)
    stochastic: tuple[int, int] = (14, 3)
    ichimoku: tuple[int, int, int] = (9, 26, 52)
    orderbook_max_age_s: int = 60  # a book snapshot older than this at bar close is not used

    def __post_init__(self) -> None:
        if not self.coins or len(set(self.coins)) != len(self.coins):
            raise ValueError(f"coins must be a non-empty tuple of distinct symbols, got {self.coins}")
        if not self.kr_venues or not set(self.kr_venues) <= {"upbit", "bithumb"}:
            raise ValueError(f"kr_venues must name upbit and/or bithumb, got {self.kr_venues}")
        if not 1 <= self.max_lookback_days <= 14:
            raise ValueError(f"max_lookback_days must be 1..14, got {self.max_lookback_days}")
        if self.garch_fit_days < 1 or self.garch_refit_days < 1 or self.garch_window_days < 1:
            raise ValueError("garch_fit_days, garch_refit_days and garch_window_days must be >= 1")
        if self.garch_fit_days + self.garch_refit_days > self.max_lookback_days:
            raise ValueError(
                f"garch_fit_days + garch_refit_days ({self.garch_fit_days} + {self.garch_refit_days}) is the "
                f"GARCH look-back and must not exceed max_lookback_days ({self.max_lookback_days})"
            )
        if any(p < 2 for p in self.rsi_periods):
            raise ValueError(f"rsi_periods must be >= 2, got {self.rsi_periods}")
        fast, slow, signal = self.macd
        if not 1 <= fast < slow or signal < 1:
            raise ValueError(f"macd must be (fast, slow, signal) with 1 <= fast < slow, got {self.macd}")
        if self.bollinger[0] < 2 or self.bollinger[1] <= 0:
            raise ValueError(f"bollinger must be (periods >= 2, width > 0), got {self.bollinger}")
        if min(self.stochastic) < 1 or min(self.ichimoku) < 1:
            raise ValueError("stochastic and ichimoku periods must be >= 1")
        if self.orderbook_max_age_s < 1:
            raise ValueError("orderbook_max_age_s must be >= 1")

    @property
    def max_lookback(self) -> timedelta:
        return timedelta(days=self.max_lookback_days)


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: what it is, how it is computed, how much history it needs and from which tables."""

    name: str
    family: str
    params: dict[str, object]
    formula: str
    lookback: timedelta
    sources: tuple[str, ...]
    # "tick": a function of bar closes, premiums and the latest book, so the streaming engine refreshes it on
    # every order-book snapshot (the snapshot's mid standing in for the open bar's close); "bar": bar close only
    refresh: str = "bar"


@dataclass
class FeatureResult:
    frame: pl.DataFrame  # ts, coin, interval_s, <features...> for ts in [start, end), sorted by coin, ts
    unavailable: dict[str, str]  # family (or family/timeframe) -> why its columns are null
    interval_s: int  # bar interval the features were computed at
    kr_venue: dict[str, str] = field(default_factory=dict)  # coin -> Korean venue of the kr_* features
    input_problems: list[str] = field(default_factory=list)  # non-finite inputs found and nulled, etc.
