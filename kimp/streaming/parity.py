"""Live equals batch, measured: replay a stored range through the streaming engine and compare every bar
and feature with the batch ``features`` build of the same days (tests/test_streaming_parity.py and
benchmarks/bench_serving.py use this).

A cell matches when both are null, or both are values with
``|live - batch| <= 1e-6 * max(|live|, |batch|, floor)``, ``floor`` being a thousandth of the feature's
largest magnitude in the compared rows: a relative difference is not defined where a value crosses zero
(a Bollinger %B at the lower band, a VWAP/TWAP ratio minus one), and there the rounding of window sums,
which differs with the bar a computation starts from in the batch build itself, decides the last digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from kimp.features.build import build_features
from kimp.features.types import FeatureConfig
from kimp.market_data.source import MarketSource
from kimp.streaming.engine import StreamingEngine, config_for_venue
from kimp.streaming.events import FeatureVector
from kimp.streaming.feeds import StoredFeed, batch_inputs, stored_history
from kimp.timeutil import day_start

RTOL = 1e-6
SCALE_FLOOR = 1e-3


@dataclass
class ParityReport:
    rows: int
    cells: int
    mismatches: int
    non_null: int
    by_feature: dict[str, int] = field(default_factory=dict)
    examples: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __str__(self) -> str:
        worst = sorted(self.by_feature.items(), key=lambda kv: -kv[1])[:10]
        shown = ", ".join(
            f"{k}: {n} (batch {self.examples[k][0]!r}, live {self.examples[k][1]!r})" for k, n in worst
        )
        return (
            f"{self.mismatches} mismatched cells of {self.cells} ({self.rows} rows, {self.non_null} non-null "
            f"batch cells){': ' + shown if shown else ''}"
        )


def vectors_frame(vectors: list[FeatureVector]) -> pl.DataFrame:
    """Bar-close vectors as a frame keyed like the batch table (ts, coin, then the features)."""
    if not vectors:
        return pl.DataFrame()
    names = vectors[0].names
    keys = pl.DataFrame(
        {"ts": [v.ts for v in vectors], "coin": [v.coin for v in vectors]},
        schema={"ts": pl.Datetime("us", "UTC"), "coin": pl.String},
    )
    values = pl.DataFrame(np.vstack([v.values for v in vectors]), schema=list(names), orient="row")
    return pl.concat([keys, values.fill_nan(None)], how="horizontal")


def compare(batch: pl.DataFrame, live: pl.DataFrame, names: tuple[str, ...] | list[str]) -> ParityReport:
    """Cell-by-cell comparison on the (ts, coin) rows of ``live``; a row missing from either side is an
    error (the grids differ)."""
    live = live.sort("ts", "coin")
    batch = batch.join(live.select("ts", "coin"), on=["ts", "coin"], how="semi").sort("ts", "coin")
    if not batch.select("ts", "coin").equals(live.select("ts", "coin")):
        missing = live.join(batch, on=["ts", "coin"], how="anti").select("ts", "coin").head(5).to_dicts()
        raise AssertionError(f"live rows without a batch row (the grids differ), e.g. {missing}")
    a = batch.select(names).to_numpy().astype(np.float64)
    b = live.select(names).to_numpy().astype(np.float64)
    na, nb = np.isnan(a), np.isnan(b)
    scale = SCALE_FLOOR * np.nanmax(np.where(na, np.nan, np.abs(a)), axis=0, initial=0.0)
    denom = np.maximum(np.maximum(np.abs(a), np.abs(b)), scale[None, :])
    both = ~na & ~nb
    bad = (na != nb) | (both & (np.abs(a - b) > RTOL * denom))
    report = ParityReport(rows=a.shape[0], cells=a.size, mismatches=int(bad.sum()), non_null=int((~na).sum()))
    for j in np.flatnonzero(bad.any(axis=0)):
        i = int(np.flatnonzero(bad[:, j])[0])
        report.by_feature[names[j]] = int(bad[:, j].sum())
        report.examples[names[j]] = (float(a[i, j]), float(b[i, j]))
    return report


def replay(
    source: MarketSource,
    *,
    start: datetime,
    end: datetime,
    interval_s: int,
    config: FeatureConfig | None = None,
    kr_venue: str | None = None,
    snapshots: bool = False,
) -> tuple[StreamingEngine, list[FeatureVector]]:
    """Warm the engine up from the source's history before ``start``, then stream [start, end)."""
    config = config_for_venue(config or FeatureConfig(), kr_venue)
    engine = StreamingEngine(config, interval_s=interval_s, tick=snapshots)
    engine.warm_up(stored_history(source, until=start, interval_s=interval_s, config=config), until=start)
    feed = StoredFeed(source, start=start, end=end, interval_s=interval_s, snapshots=snapshots)
    return engine, list(engine.run(feed.events()))


def batch_reference(
    source: MarketSource, days: list[date], config: FeatureConfig | None = None
) -> pl.DataFrame:
    """The batch ``features`` asset's rows for ``days`` (each day from the inputs the asset reads)."""
    config = config or FeatureConfig()
    frames = []
    for d in days:
        start = day_start(d)
        frames.append(
            build_features(
                batch_inputs(source, d, config), start=start, end=start + timedelta(days=1), config=config
            ).frame
        )
    return pl.concat(frames)


def replay_parity(
    source: MarketSource,
    *,
    start: datetime,
    end: datetime,
    interval_s: int,
    config: FeatureConfig | None = None,
    kr_venue: str | None = None,
) -> tuple[ParityReport, list[FeatureVector]]:
    """Replay [start, end) and compare every bar-close vector with the batch build of its day."""
    config = config_for_venue(config or FeatureConfig(), kr_venue)
    engine, vectors = replay(source, start=start, end=end, interval_s=interval_s, config=config)
    days = sorted({v.ts.date() for v in vectors})
    batch = batch_reference(source, days, config)
    return compare(batch, vectors_frame(vectors), engine.names), vectors
