"""Live features equal batch features, bar for bar (issue 14's parity proof).

- The compiled program of the whole catalog, stepped bar by bar over 1-minute inputs with 14 days of
  history (every feature has values, GARCH included), against ``build_features``.
- The streaming engine on the production path (feed -> premium -> base row -> program): the simulated
  market at 1-minute bars with order books, and the real hourly Bithumb/Binance samples through the
  ``files`` source, replayed and compared with the batch ``features`` build of each day (the inputs the
  asset reads: kimp.streaming.feeds.batch_inputs).
A cell matches when both are null or the values agree to 1e-6 relative (kimp.streaming.parity).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from kimp.features import FeatureConfig, build_features
from kimp.features.inputs import base_frame, ensure_columns, prepare
from kimp.market_data.simulated import SimulatedSource
from kimp.market_data.source import MarketSource
from kimp.streaming.compiler import CompiledFeatures, compile_features
from kimp.streaming.parity import compare, replay_parity, vectors_frame
from kimp.testing import synthetic_inputs
from tests.conftest import SHARED_REAL

CONFIG = FeatureConfig()


class Since:
    """A source whose data starts at ``first`` (earlier days are empty): a short stored history."""

    def __init__(self, source: MarketSource, first: date) -> None:
        self.source, self.first, self.name = source, first, source.name

    def provides(self, table: str, venue: str | None = None) -> bool:
        return self.source.provides(table, venue)  # type: ignore[arg-type]

    def __getattr__(self, table: str):
        method = getattr(self.source, table)

        def read(*args):
            frame = method(*args)
            return frame.clear() if args[-1] < self.first else frame

        return read


@pytest.mark.slow
def test_compiled_catalog_equals_the_batch_build_on_every_feature() -> None:
    start = datetime(2024, 1, 15, tzinfo=UTC)
    inputs = synthetic_inputs(start - timedelta(days=14), 15, orderbook_every_s=30, seed=11)
    cut = start + timedelta(hours=22)  # stream the day's last two hours
    end = start + timedelta(days=1)
    batch = build_features(inputs, start=cut, end=end, config=CONFIG).frame
    prep = prepare(inputs, start=cut, end=end, config=CONFIG)
    program = compile_features(CONFIG, prep.interval_s)
    assert not program.fallback, f"features the compiler cannot express: {program.fallback}"
    live = []
    for coin in CONFIG.coins:
        base, _ = base_frame(prep, coin, end=end, config=CONFIG)
        base = ensure_columns(base)
        history, stream = base.filter(pl.col("ts") < cut), base.filter(pl.col("ts") >= cut)
        compiled = CompiledFeatures(program, CONFIG, prep.interval_s)
        compiled.warm(history)
        rows = [compiled.step(row) for row in stream.iter_rows(named=True)]
        keys = stream.select("ts", coin=pl.lit(coin))
        live.append(
            pl.concat(
                [keys, pl.DataFrame(np.vstack(rows), schema=list(program.names), orient="row")],
                how="horizontal",
            )
        )
    frame = pl.concat(live).with_columns(pl.col(list(program.names)).fill_nan(None))
    report = compare(batch, frame, program.names)
    assert report.mismatches == 0, str(report)
    empty = [n for n in program.names if batch[n].null_count() == batch.height]
    assert not empty, f"features without values in the compared rows: {empty[:10]}"


@pytest.mark.slow
def test_simulated_market_replayed_through_the_engine_equals_the_batch_features() -> None:
    day = date(2024, 3, 6)
    # three days of stored history: features with a longer look-back are null in both (compared too)
    source = Since(SimulatedSource(seed=7, orderbook_interval_ms=30_000), day - timedelta(days=3))
    start = datetime(2024, 3, 6, 21, 0, tzinfo=UTC)  # 21:00..22:30: bars inside one day
    report, vectors = replay_parity(
        source, start=start, end=start + timedelta(minutes=90), interval_s=60, config=CONFIG
    )
    assert report.mismatches == 0, str(report)
    assert len(vectors) == 2 * 90 and report.non_null > 0.8 * 0.5 * report.cells
    frame = vectors_frame(vectors)
    for name in (
        "kr_ob_spread_bps",
        "prem_fx_z_1d",
        "kr_rsi14_1h",
        "news_count_1h",
        "onchain_mvrv",
        "fx_age_h",
    ):
        assert frame[name].null_count() == 0, f"{name} has nulls on the simulated market"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_REAL.is_dir(), reason=f"real samples not found at {SHARED_REAL}")
def test_real_hourly_samples_replayed_through_the_files_source_equal_the_batch_features() -> None:
    from kimp.market_data.files import FilesSource

    src = FilesSource(SHARED_REAL)  # as KIMP_SOURCE=files KIMP_DATA_DIR=../shared/data/real reads it
    start = datetime(2018, 1, 9, tzinfo=UTC)  # two days of the 2018 peak, 14 days of history before
    report, vectors = replay_parity(
        src, start=start, end=start + timedelta(days=2), interval_s=3600, config=CONFIG
    )
    assert report.mismatches == 0, str(report)
    assert {v.kr_venue for v in vectors} == {"bithumb"} and len(vectors) == 2 * 48
    frame = vectors_frame(vectors)
    # (GARCH needs 200 returns in its 7-day fit window: null on hourly bars, in both)
    assert frame["prem_fx"].null_count() == 0 and frame["prem_fx_z_7d"].null_count() == 0
