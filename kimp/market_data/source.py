"""One interface for every market-data source; the implementation is chosen by config.

Implementations: ``simulated`` (embedded default, deterministic), ``files`` (real history from a
folder) and ``exchange`` (ccxt downloads). Each method returns one UTC day of one raw table with
exactly the schema in :mod:`kimp.market_data.schemas`. A table a source cannot provide comes back
empty with the right schema, and ``provides()`` says so, so that downstream code can flag the missing
family instead of reading zeros.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, Protocol, runtime_checkable

import polars as pl

Table = Literal["candles", "fx", "orderbook", "onchain", "macro", "news"]
# The simulated market's order-book snapshot interval unless configured (Settings.orderbook_interval_ms,
# KIMP_ORDERBOOK_MS): the one place this default is written.
ORDERBOOK_INTERVAL_MS = 5_000


@runtime_checkable
class MarketSource(Protocol):
    name: str

    def provides(self, table: Table, venue: str | None = None) -> bool:
        """Whether this source can produce ``table`` at all (for candles: for that venue)."""
        ...

    def candles(self, venue: str, day: date) -> pl.DataFrame:
        """Candles of every symbol this source has for ``venue`` whose open time falls on ``day``."""
        ...

    def fx(self, day: date) -> pl.DataFrame:
        """USD/KRW observations whose period starts on ``day`` (see schemas.FX)."""
        ...

    def orderbook(self, day: date) -> pl.DataFrame: ...

    def onchain(self, day: date) -> pl.DataFrame: ...

    def macro(self, day: date) -> pl.DataFrame: ...

    def news(self, day: date) -> pl.DataFrame: ...


def build_source(
    kind: str,
    *,
    seed: int = 7,
    data_dir: str | None = None,
    orderbook_interval_ms: int = ORDERBOOK_INTERVAL_MS,
    news_feeds: tuple[str, ...] = (),
    news_dir: str | None = None,
) -> MarketSource:
    """Build the configured source. Imports lazily so that one source's dependencies never slow another."""
    if kind == "simulated":
        from kimp.market_data.simulated import SimulatedSource

        return SimulatedSource(seed=seed, orderbook_interval_ms=orderbook_interval_ms)
    if kind == "files":
        if not data_dir:
            raise ValueError("KIMP_SOURCE=files needs KIMP_DATA_DIR, the folder that holds the files")
        from kimp.market_data.files import FilesSource

        return FilesSource(data_dir)
    if kind == "exchange":
        from kimp.market_data.exchange import ExchangeSource

        archive = None
        if news_feeds:
            from pathlib import Path

            from kimp.market_data.rss import RssArchive

            archive = RssArchive(Path(news_dir or "news"), news_feeds)
        return ExchangeSource(fx_dir=data_dir, news_archive=archive)
    raise ValueError(f"unknown market-data source {kind!r}: expected simulated, files or exchange")
