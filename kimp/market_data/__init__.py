"""Market-data layer: raw tables from simulated, file and exchange sources."""

from kimp.market_data.schemas import COINS, KR_VENUES, TABLES, VENUES
from kimp.market_data.source import MarketSource, build_source

__all__ = ["COINS", "KR_VENUES", "TABLES", "VENUES", "MarketSource", "build_source"]
