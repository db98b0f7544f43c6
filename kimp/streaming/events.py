"""What a feed emits and what the streaming engine consumes: rows of the raw tables as they become known,
and bar closes.

A feed emits events in the order the data becomes known (``at``):
- ``Rows``: rows of one raw table (schemas in kimp.market_data.schemas), known at ``at``: candles at
  their bar's close, order-book snapshots and news at their ``ts``, FX, on-chain and macro rows at
  their ``published_at``;
- ``BarClose``: every candle of the bar that opened at ``ts`` has been emitted (the feed knows: a stored
  source has the whole day, an exchange feed has polled every market past the close).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

# Raw tables a feed may emit (the feature engine derives the premium itself).
FEED_TABLES = ("candles", "fx", "orderbook", "onchain", "macro", "news", "news_sentiment")


@dataclass(frozen=True)
class Rows:
    table: str
    rows: pl.DataFrame
    at: datetime  # when these rows became known (UTC)

    def __post_init__(self) -> None:
        if self.table not in FEED_TABLES:
            raise ValueError(f"Rows.table must be one of {FEED_TABLES}, got {self.table!r}")


@dataclass(frozen=True)
class BarClose:
    ts: datetime  # open time of the bar that closed
    interval_s: int

    @property
    def at(self) -> datetime:
        from datetime import timedelta

        return self.ts + timedelta(seconds=self.interval_s)


Event = Rows | BarClose


@dataclass(frozen=True)
class FeatureVector:
    """One coin's full feature vector for the bar that opened at ``ts``.

    ``values`` holds the catalog's features in ``names`` order (float32 values widened to float64,
    NaN = null). ``tick`` vectors are provisional: the tick-level features were recomputed at ``known_at``
    on an order-book snapshot (the bar is still open), the others are those of the last closed bar.
    """

    ts: datetime
    coin: str
    kr_venue: str
    names: tuple[str, ...]
    values: np.ndarray
    feature_set: str
    known_at: datetime  # bar close, or the snapshot time of a tick refresh
    computed_at: datetime  # wall clock when the engine finished it
    tick: bool = False
    compute_ms: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float | None]:
        return {n: (None if np.isnan(v) else float(v)) for n, v in zip(self.names, self.values, strict=True)}
