"""Feature store: ~650 point-in-time-correct features per (bar, coin) from the raw tables.

Entry points
- ``build_features(FeatureInputs, start=, end=, config=)`` -> ``FeatureResult``: one wide frame keyed
  by (ts, coin) (plus ``interval_s``), Float32 features for bars with ``start <= ts < end``;
  ``unavailable`` says which families (or family/timeframe) are null and why; ``input_problems`` lists
  non-finite inputs that were treated as missing.
- ``catalog()`` / ``catalog_frame()``: every feature's name, family, params, formula, look-back, source
  tables; ``feature_set_version()`` hashes it; ``lookback_days()`` says how many days of each input
  table a run must read before ``start``; ``python -m kimp.features.docs`` writes docs/features.md.
- ``adf_report`` (statsmodels ADF per feature) of a training window.
- ``point_in_time(store_uri, requests)``: DuckDB ASOF JOIN over the stored ``features`` partitions,
  matching each request time with rows whose bar closed (``ts + interval_s``) at or before it.

Families (multi-timeframe 1m, 5m, 15m, 1h, 4h, 1d where the bar interval allows and the look-back fits
in 14 days): returns and log returns; realized, Parkinson and GARCH(1,1) volatility; momentum;
mean reversion of both premiums (z-scores, AR(1) half-life, rolling-quantile and range distances); RSI
(14, 21, 50), MACD (12, 26, 9), Bollinger (20, 2), stochastic (14, 3), Ichimoku (9, 26, 52); VWAP and
TWAP distances; premium (both definitions, changes, BTC-ETH and cross-venue spreads, USDT basis,
Korean/Binance volume ratio, USD/KRW and USDT/KRW moves, FX staleness); order book (spread,
imbalance at levels 1/5/10, depth per level, microprice); liquidity (VPIN by bulk volume
classification, Kyle's lambda, Amihud); volume (rate, large-bar counts, money flow, A/D, buy/sell
pressure); on-chain (flows, whales, addresses, hash rate, difficulty, MVRV, NVT); macro (KOSPI, KOSDAQ,
VIX, DXY, gold, silver, 2y/10y yields: level, change, age); lexicon news tone; calendar (UTC cycle, KST
market hours).

Time rules
- Every table's ``ts`` is the bar open; a bar is known at its close ``ts + interval``. A feature at bar
  ``ts`` uses only data known by that close: candles/premium of bars up to this one, order-book
  snapshots and news published before the close, and fx/onchain/macro rows joined as of
  ``published_at <= close`` (never their ``ts``).
- Windows are durations: on the premium table's regular bar grid a window of N seconds is N / interval
  rows; a window the interval cannot express (1 minute on hourly bars) leaves the column null, and it
  is reported in ``unavailable``. The column set never depends on the data set.
- Look-back = the history a feature needs, measured from the first grid bar's close to this bar's
  close; rows with less are null. Recursive features are windowed (EMAs truncated at two spans, GARCH
  restarted ``garch_window_days`` back, parameters refitted on epoch-aligned blocks from the days
  strictly before the block), so a day computed alone from ``lookback_days()`` of history equals the
  same day inside a longer run (tests/test_features_honesty.py).
- Missing sources are null, never zero; non-finite inputs become null (missing); non-finite results
  (division by zero, log of zero) become null. A window computes on its valid bars when at least half
  are present; a ratio of windowed sums (VWAP, money flow, ...) sums both sides over the same bars.
  Each leg's close comes from its own candles, so one venue's missing bar leaves the other's features.
"""

from kimp.features.build import build_features, catalog, catalog_frame, feature_set_version, lookback_days
from kimp.features.pit import point_in_time
from kimp.features.stationarity import adf_report
from kimp.features.types import TIMEFRAMES, FeatureConfig, FeatureInputs, FeatureResult, FeatureSpec

__all__ = [
    "TIMEFRAMES",
    "FeatureConfig",
    "FeatureInputs",
    "FeatureResult",
    "FeatureSpec",
    "adf_report",
    "build_features",
    "catalog",
    "catalog_frame",
    "feature_set_version",
    "lookback_days",
    "point_in_time",
]
