"""The market-data resource: one interface, implementation chosen by config (simulated/files/exchange)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from kimp.market_data import MarketSource, build_source


class MarketDataResource(ConfigurableResource):
    """Chooses the market-data source. ``kind``: simulated | files | exchange."""

    kind: str
    data_dir: str | None = None
    seed: int
    orderbook_interval_ms: int
    news_feeds: str = ""  # comma-separated RSS/Atom URLs (exchange source)
    news_dir: str | None = None  # where the exchange source archives feed items

    _source: MarketSource | None = PrivateAttr(default=None)

    def source(self) -> MarketSource:
        """The source object, built once per resource instance (its file and simulation caches live there)."""
        if self._source is None:
            self._source = build_source(
                self.kind,
                seed=self.seed,
                data_dir=self.data_dir,
                orderbook_interval_ms=self.orderbook_interval_ms,
                news_feeds=tuple(u.strip() for u in self.news_feeds.split(",") if u.strip()),
                news_dir=self.news_dir,
            )
        return self._source
