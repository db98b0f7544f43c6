"""Real market history from a folder of files: ``FilesSource(data_dir)``. See docs/data-sources.md."""

from kimp.market_data.files.discovery import Catalog, FileSpec, discover
from kimp.market_data.files.source import FilesSource, cache_stats, clear_cache

__all__ = ["Catalog", "FileSpec", "FilesSource", "cache_stats", "clear_cache", "discover"]
