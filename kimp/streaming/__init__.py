"""Real-time features: the streaming engine (bar-close and tick feature vectors equal to the batch
``features`` asset), the feeds it consumes, the online store it writes and the offline time-series store.

Entry points (imported on first use: the package itself stays light for kimp.settings)
- ``StreamingEngine(config, interval_s=, kr_venue=)``: ``warm_up(history, until=)`` then ``on_event(event)``
  for every ``Rows`` / ``BarClose`` a feed emits; returns ``FeatureVector``s (kimp.streaming.engine).
- feeds: ``StoredFeed`` (simulated / files replay), ``ExchangeFeed`` (ccxt), one ``Feed`` interface.
- ``open_online_store(settings)``: latest vector and signal per (coin, Korean venue), Redis or SQLite.
- ``TimeSeriesStore``: bars, served vectors, predictions and signals in PostgreSQL, partitioned by day.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "StreamingEngine": "kimp.streaming.engine",
    "TailEvaluator": "kimp.streaming.evaluator",
    "BarClose": "kimp.streaming.events",
    "Event": "kimp.streaming.events",
    "FeatureVector": "kimp.streaming.events",
    "Rows": "kimp.streaming.events",
    "StreamSettings": "kimp.streaming.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kimp.streaming' has no attribute {name!r}")
    return getattr(import_module(module), name)
