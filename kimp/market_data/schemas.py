"""Schemas of the raw market-data tables: the contract between sources, assets and checks.

Every table has a timezone-aware UTC ``ts`` column. Time of knowledge:
- candles: ``ts`` is the bar OPEN time; the bar is known at its close, ``ts + interval_s``.
- fx, onchain: rows carry ``published_at``, the first instant the value could be known.
- macro, news: ``published_at`` likewise; ``ts`` is the observation instant.
- orderbook: ``ts`` is the snapshot instant (known at ``ts``).
A consumer joins as of ``published_at`` (or bar close), never as of ``ts``.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")

VENUES: tuple[str, ...] = ("upbit", "bithumb", "binance")
KR_VENUES: tuple[str, ...] = ("upbit", "bithumb")
COINS: tuple[str, ...] = ("BTC", "ETH")
BOOK_LEVELS = 10

CANDLES: dict[str, pl.DataType] = {
    "ts": UTC_TS,  # bar open time
    "venue": pl.String(),  # upbit | bithumb | binance
    "symbol": pl.String(),  # ccxt style: BTC/KRW, USDT/KRW, BTC/USDT
    "base": pl.String(),
    "quote": pl.String(),
    "interval_s": pl.Int32(),  # bar length in seconds: 60, 300, 3600, 86400 ...
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),  # base-asset volume
    "quote_volume": pl.Float64(),  # quote-asset volume, null when the source lacks it
}

FX: dict[str, pl.DataType] = {
    "ts": UTC_TS,  # start of the observation period (bar open, or the value date at 00:00 UTC)
    "series": pl.String(),  # intraday | fixing | daily_close
    "interval_s": pl.Int32(),
    "published_at": UTC_TS,  # when the value became known
    "open": pl.Float64(),  # may be null (daily fixings have only a close)
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),  # KRW per USD
    "source": pl.String(),  # simulated | investing | ecb | ...
}

_BOOK_COLS: dict[str, pl.DataType] = {}
for _side in ("bid", "ask"):
    for _what in ("px", "sz"):
        for _lvl in range(1, BOOK_LEVELS + 1):
            _BOOK_COLS[f"{_side}_{_what}_{_lvl}"] = pl.Float64()

ORDERBOOK: dict[str, pl.DataType] = {
    "ts": UTC_TS,  # snapshot instant
    "venue": pl.String(),
    "symbol": pl.String(),
    **_BOOK_COLS,  # bid_px_1 is the best bid; sizes in base units; null where a level is absent
}

ONCHAIN: dict[str, pl.DataType] = {
    "ts": UTC_TS,  # window start (10-minute windows)
    "published_at": UTC_TS,  # window end: the metric is known then
    "coin": pl.String(),
    "exchange_inflow": pl.Float64(),  # coins moved onto exchanges in the window
    "exchange_outflow": pl.Float64(),
    "whale_tx_count": pl.Int64(),  # transfers above the whale threshold
    "active_addresses": pl.Int64(),
    "hash_rate": pl.Float64(),  # EH/s (BTC) / TH/s-equivalent (ETH, simulated)
    "difficulty": pl.Float64(),
    "mvrv": pl.Float64(),
    "nvt": pl.Float64(),
}

MACRO_SERIES: tuple[str, ...] = ("kospi", "kosdaq", "vix", "dxy", "gold", "silver", "us2y", "us10y")

MACRO: dict[str, pl.DataType] = {
    "ts": UTC_TS,  # observation instant: the market close the value refers to
    "series": pl.String(),  # one of MACRO_SERIES
    "value": pl.Float64(),  # index points, USD/oz for metals, percent for yields
    "published_at": UTC_TS,  # real publication time of the value
}

NEWS: dict[str, pl.DataType] = {
    "ts": UTC_TS,  # publication time
    "source": pl.String(),
    "headline": pl.String(),
    "text": pl.String(),  # body or summary; null when the source has only headlines
}

# One row per scored headline (the ``news_sentiment`` asset, kimp.sentiment.scoring): the news row's ``ts`` is
# kept, so a score is known when its headline was published (scoring is a pure function of the headline).
NEWS_SENTIMENT: dict[str, pl.DataType] = {
    "ts": UTC_TS,  # publication time of the headline
    "source": pl.String(),
    "headline": pl.String(),
    "p_neg": pl.Float64(),
    "p_neu": pl.Float64(),
    "p_pos": pl.Float64(),
    "score": pl.Float64(),  # p_pos - p_neg, in [-1, 1]
    "model": pl.String(),  # e.g. "kimp-sentiment (all-MiniLM-L6-v2, onnx-int8)" or "lexicon:vader"
    "version": pl.String(),  # registered model version ("" when scored by an unregistered folder)
}

# The kimchi premium (kimp.premium): both definitions per bar, coin and Korean venue; fractions.
PREMIUM: dict[str, pl.DataType] = {
    "ts": UTC_TS,
    "coin": pl.String(),
    "kr_venue": pl.String(),
    "interval_s": pl.Int32(),
    "premium_fx": pl.Float64(),
    "premium_usdt": pl.Float64(),
    "kr_close": pl.Float64(),
    "binance_close": pl.Float64(),
    "usdt_krw_close": pl.Float64(),
    "usdkrw": pl.Float64(),
    "fx_published_at": UTC_TS,
    "stale": pl.Boolean(),
}

TABLES: dict[str, dict[str, pl.DataType]] = {
    "candles": CANDLES,
    "fx": FX,
    "orderbook": ORDERBOOK,
    "onchain": ONCHAIN,
    "macro": MACRO,
    "news": NEWS,
}


def empty(schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with exactly this schema (for tables a source does not provide)."""
    return pl.DataFrame(schema=dict(schema))


def conform(frame: pl.DataFrame, schema: Mapping[str, pl.DataType], *, table: str) -> pl.DataFrame:
    """Select and cast ``frame`` to ``schema``; a missing column is a programming error here.

    Sources call this last, so every table leaves the domain layer with exactly its documented schema.
    """
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: columns {missing} are missing; have {frame.columns}")
    return frame.select([pl.col(c).cast(t, strict=True) for c, t in schema.items()])


def schema_problems(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> list[str]:
    """Human-readable differences between a frame's schema and the expected one."""
    problems = []
    have = dict(frame.schema)
    for col, dtype in schema.items():
        if col not in have:
            problems.append(f"missing column {col!r} ({dtype})")
        elif have[col] != dtype:
            problems.append(f"column {col!r} is {have[col]}, expected {dtype}")
    extra = [c for c in have if c not in schema]
    if extra:
        problems.append(f"unexpected columns {extra}")
    return problems
