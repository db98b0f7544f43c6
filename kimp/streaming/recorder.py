"""``--record``: every served feature vector kept, in the Parquet store as the table ``served_features``
(``kimp sql`` reads it like any asset) and in PostgreSQL when ``KIMP_PG_URL`` is set.

Vectors are buffered and flushed every ``flush_every`` bars (and on close), one Parquet file per flush named
after its day and time, so a crash loses at most one buffer and never damages written files.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import numpy as np
import polars as pl

from kimp.storage.parquet_store import ParquetStore
from kimp.streaming.events import FeatureVector
from kimp.streaming.timeseries import TimeSeriesStore

TABLE = "served_features"


def served_frame(vectors: list[FeatureVector]) -> pl.DataFrame:
    """Columns ``ts``, ``coin``, the features (Float32, as in ``features``), ``served_at``, then
    ``kr_venue``, ``feature_set``, ``known_at`` and ``tick``."""
    names = vectors[0].names
    keys = pl.DataFrame(
        {"ts": [v.ts for v in vectors], "coin": [v.coin for v in vectors]},
        schema={"ts": pl.Datetime("us", "UTC"), "coin": pl.String},
    )
    values = pl.DataFrame(
        np.vstack([v.values for v in vectors]).astype(np.float32), schema=list(names), orient="row"
    )
    tail = pl.DataFrame(
        {
            "served_at": [v.computed_at for v in vectors],
            "kr_venue": [v.kr_venue for v in vectors],
            "feature_set": [v.feature_set for v in vectors],
            "known_at": [v.known_at for v in vectors],
            "tick": [v.tick for v in vectors],
        },
        schema={
            "served_at": pl.Datetime("us", "UTC"),
            "kr_venue": pl.String,
            "feature_set": pl.String,
            "known_at": pl.Datetime("us", "UTC"),
            "tick": pl.Boolean,
        },
    )
    return pl.concat([keys, values.fill_nan(None), tail], how="horizontal")


class Recorder:
    def __init__(
        self,
        store: ParquetStore | None,
        timeseries: TimeSeriesStore | None = None,
        *,
        flush_every: int = 120,
    ) -> None:
        self.store, self.timeseries, self.flush_every = store, timeseries, flush_every
        self.buffer: list[FeatureVector] = []
        self.written = 0

    def add(self, vectors: Iterable[FeatureVector]) -> None:
        self.buffer.extend(vectors)
        if len(self.buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        vectors, self.buffer = self.buffer, []
        if self.store is not None:
            frame = served_frame(vectors)
            first = vectors[0].ts
            name = f"{first:%Y-%m-%d}_{datetime.now(UTC):%H%M%S}_{uuid.uuid4().hex[:8]}"
            self.store.write(TABLE, name, frame)
        if self.timeseries is not None:
            self.timeseries.append_vectors(vectors)
        self.written += len(vectors)

    def close(self) -> None:
        self.flush()
