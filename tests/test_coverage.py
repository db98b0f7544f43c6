"""The coverage rule (kimp.quality.coverage): a whole day per series, and never less than the stored partition."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import polars as pl
from dagster import DagsterInstance, materialize

from kimp.market_data import schemas
from kimp.quality import QualityConfig
from kimp.quality.coverage import incomplete_day, series_coverage, shrinkage
from kimp.quality.suites import RULES, CheckOutcome, _coverage
from kimp.settings import Settings
from kimp_pipelines.assets import build_market_assets
from kimp_pipelines.partitions import Partitions
from kimp_pipelines.resources import MarketDataResource, build_resources
from tests.fakes import FakeSource

DAY = date(2024, 1, 2)
RULE = RULES["candles"]


def _cov(frame: pl.DataFrame) -> dict:
    return series_coverage(frame, RULE.group, RULE.interval)


def _check(frame: pl.DataFrame, stored: pl.DataFrame | None, **cfg: object) -> CheckOutcome:
    outcome = CheckOutcome("candles", "coverage", True, "", row_count=frame.height)
    _coverage(outcome, RULE, frame, DAY, QualityConfig(**cfg), stored)  # type: ignore[arg-type]
    return outcome


def test_a_whole_day_passes_and_reports_expected_bars() -> None:
    candles = FakeSource().candles("upbit", DAY)
    out = _check(candles, stored=candles)
    assert out.passed
    assert "BTC/KRW 1h: 24 of 24 bars (00:00-24:00 UTC)" in out.notes


def test_missing_start_or_end_of_the_day_fails_beyond_the_gap_threshold() -> None:
    candles = FakeSource().candles("upbit", DAY)
    hour = pl.col("ts").dt.hour()
    late = candles.filter((pl.col("symbol") != "BTC/KRW") | (hour >= 7))  # 7 h missing at the start
    assert incomplete_day(_cov(late), DAY, 6 * 3600) == [
        "BTC/KRW 1h: 17 of 24 bars (07:00-24:00 UTC): nothing in 00:00-07:00"
    ]
    early = candles.filter((pl.col("symbol") != "ETH/KRW") | (hour < 18))  # 6 h missing at the end: allowed
    assert incomplete_day(_cov(early), DAY, 6 * 3600) == []
    assert incomplete_day(_cov(early), DAY, 5 * 3600) == [
        "ETH/KRW 1h: 18 of 24 bars (00:00-18:00 UTC): nothing in 18:00-24:00"
    ]
    assert not _check(late, stored=None).passed  # a first run too: an incomplete day is not a day


def test_less_than_stored_is_named_and_refused_unless_allowed() -> None:
    stored = FakeSource().candles("upbit", DAY)
    hour = pl.col("ts").dt.hour()
    new = stored.filter(pl.col("symbol") != "ETH/KRW").filter(
        (pl.col("symbol") != "BTC/KRW") | ~hour.is_between(10, 12)
    )
    assert shrinkage(_cov(stored), _cov(new)) == [
        "BTC/KRW 1h: 21 of 24 bars (00:00-24:00 UTC), stored 24 of 24 bars (00:00-24:00 UTC), "
        "hours now missing 10-12h UTC",
        "ETH/KRW 1h: nothing (stored: 24 of 24 bars (00:00-24:00 UTC))",
    ]
    refused = _check(new, stored=stored)
    assert not refused.passed and "--allow-shrink" in refused.failures[0].detail
    accepted = _check(new, stored=stored, allow_shrink=True)
    assert accepted.passed and any("accepted (--allow-shrink)" in n for n in accepted.notes)
    # none at all (a source that no longer provides the table) is the extreme case
    assert not _check(schemas.empty(schemas.CANDLES), stored=stored).passed
    # more, or the same, is fine; so is anything when nothing was stored
    assert _check(stored, stored=new).passed and _check(new, stored=None).passed


def test_same_row_count_at_other_hours_is_less() -> None:
    """A 9-hour shift (a KST file read as UTC) keeps the count but loses hours: refused."""
    stored = FakeSource().candles("binance", DAY).filter(pl.col("ts").dt.hour() < 15)
    shifted = stored.with_columns(pl.col("ts") + pl.duration(hours=9))
    assert shrinkage(_cov(stored), _cov(shifted))[0].endswith("hours now missing 00-08h UTC")


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.parquet")
    }


class _SimulatedWithout(MarketDataResource):
    """The simulated market, minus the symbols named (as a source that stopped delivering one would be)."""

    drop: str = ""

    def source(self):  # type: ignore[no-untyped-def]
        sim = super().source()
        drop = self.drop

        class Thinner:
            name = sim.name

            def provides(self, table, venue=None):  # type: ignore[no-untyped-def]
                return sim.provides(table, venue)

            def candles(self, venue, day):  # type: ignore[no-untyped-def]
                return sim.candles(venue, day).filter(pl.col("symbol") != drop)

        return Thinner()


def test_simulated_source_rerun_with_a_symbol_less_keeps_the_stored_partition(tmp_path: Path) -> None:
    """On the simulated market: a re-run whose source lost ETH is refused, the file stays byte-identical."""
    settings = Settings(home=tmp_path, storage_uri=str(tmp_path))
    assets = build_market_assets(Partitions.from_settings(settings))

    def run(drop: str = ""):  # type: ignore[no-untyped-def]
        market = _SimulatedWithout(kind="simulated", seed=7, orderbook_interval_ms=60_000, drop=drop)
        return materialize(
            assets,
            partition_key="2024-03-04",
            selection="binance_candles",
            resources={**build_resources(settings), "market_data": market},
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )

    assert run().success
    before = _tree(tmp_path)
    refused = run(drop="ETH/USDT")
    assert not refused.success
    failed = next(e for e in refused.get_asset_check_evaluations() if not e.passed)
    assert failed.check_name == "coverage"
    assert "ETH/USDT 1m: nothing (stored: 1440 of 1440 bars (00:00-24:00 UTC))" in (failed.description or "")
    assert _tree(tmp_path) == before
