"""Honesty of every feature: no look-ahead, declared warm-up, and partition independence.

Synthetic 1-minute inputs (kimp.testing, the documented schemas) cover the longest look-back
(14 days) so that every feature has values to check; the tests fail if any feature is all null in the
rows they compare, so a feature cannot pass by being empty.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from kimp.features import FeatureConfig, FeatureInputs, build_features, catalog, lookback_days
from kimp.testing import synthetic_inputs

START = datetime(2024, 1, 15, tzinfo=UTC)  # a Monday: macro values from Friday are in the look-back
HISTORY = lookback_days()["premium"]
CATALOG = catalog()
LOOKBACK_S = {s.name: s.lookback.total_seconds() for s in CATALOG}
# when a table's row becomes known (the column compared with the cut time)
KNOWN_AT = {
    "premium": pl.col("ts") + pl.duration(seconds=pl.col("interval_s")),
    "candles": pl.col("ts") + pl.duration(seconds=pl.col("interval_s")),
    "fx": pl.col("published_at"),
    "orderbook": pl.col("ts"),
    "onchain": pl.col("published_at"),
    "macro": pl.col("published_at"),
    "news": pl.col("ts"),
    "news_sentiment": pl.col("ts"),  # scores are a function of the headline alone
}


@pytest.fixture(scope="module")
def inputs() -> FeatureInputs:
    return synthetic_inputs(START - timedelta(days=HISTORY), HISTORY + 2, orderbook_every_s=30, seed=11)


@pytest.fixture(scope="module")
def full(inputs: FeatureInputs) -> pl.DataFrame:
    return build_features(inputs, start=START, end=START + timedelta(days=1)).frame


def _names(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("ts", "coin", "interval_s")]


def _assert_close(a: pl.DataFrame, b: pl.DataFrame, *, rtol: float, atol: float, what: str) -> None:
    """Same keys, same nulls, values within tolerance (exact when rtol = atol = 0)."""
    assert a.select("ts", "coin").equals(b.select("ts", "coin")), what
    bad: list[str] = []
    for name in _names(a):
        x, y = a[name].to_numpy().astype(np.float64), b[name].to_numpy().astype(np.float64)
        nx, ny = np.isnan(x), np.isnan(y)
        if not np.array_equal(nx, ny):
            bad.append(f"{name} (nulls differ at {int((nx != ny).sum())} rows)")
            continue
        ok = np.abs(x[~nx] - y[~nx]) <= atol + rtol * np.abs(y[~nx])
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            bad.append(f"{name} ({int((~ok).sum())} rows, e.g. {x[~nx][i]!r} vs {y[~nx][i]!r})")
    assert not bad, f"{what}: {len(bad)} features differ: {bad[:8]}"


def _alter_after(inputs: FeatureInputs, cut: datetime, *, remove: bool) -> FeatureInputs:
    """Every row known after ``cut`` is removed, or its numbers are scrambled (and news turned grim)."""
    rng = np.random.default_rng(3)
    tables: dict[str, pl.DataFrame | None] = {}
    for name, known in KNOWN_AT.items():
        frame = getattr(inputs, name)
        assert frame is not None
        later = known > cut
        if remove:
            tables[name] = frame.filter(~later)
            continue
        factor = pl.lit(pl.Series(rng.uniform(0.3, 3.0, frame.height)))
        numeric = [c for c, t in frame.schema.items() if t in (pl.Float64, pl.Int64) and c != "interval_s"]
        altered = frame.with_columns(
            pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c) for c in numeric
        )
        if name == "news":
            altered = altered.with_columns(
                pl.when(later)
                .then(pl.lit("Bitcoin crash: panic, fraud and ban fear"))
                .otherwise(pl.col("headline"))
                .alias("headline")
            )
        if name == "premium":
            altered = altered.with_columns(
                pl.when(later).then(True).otherwise(pl.col("stale")).alias("stale")
            )
        tables[name] = altered.cast(dict(frame.schema))  # type: ignore[arg-type]
    return FeatureInputs(**tables)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cut", "remove"),
    [
        (START + timedelta(hours=9, minutes=41), False),
        (START + timedelta(hours=17, minutes=3, seconds=29), True),
    ],
)
def test_no_feature_looks_ahead(
    inputs: FeatureInputs, full: pl.DataFrame, cut: datetime, remove: bool
) -> None:
    altered = build_features(
        _alter_after(inputs, cut, remove=remove), start=START, end=START + timedelta(days=1)
    )
    known = pl.col("ts") + pl.duration(seconds=pl.col("interval_s")) <= cut
    before, after = full.filter(known), altered.frame.filter(known)
    assert before.height > 0
    empty = [c for c in _names(before) if before[c].null_count() == before.height]
    assert not empty, f"features with no value to check before the cut: {empty[:10]}"
    _assert_close(after, before, rtol=0, atol=0, what=f"rows known by {cut} after altering later data")
    if not remove:  # the alteration must be visible after the cut, or the test proves nothing
        changed = full.filter(~known).select(_names(full)) != altered.frame.filter(~known).select(
            _names(full)
        )
        assert changed.select(pl.any_horizontal(pl.all())).to_series().any()


def _window(inputs: FeatureInputs, start: datetime, end: datetime, days: dict[str, int]) -> FeatureInputs:
    """Only the partitions a daily run reads: [start - look-back days, end) by each table's ``ts``."""
    tables = {}
    for name in KNOWN_AT:
        frame = getattr(inputs, name)
        lo = start - timedelta(days=days[name])
        tables[name] = frame.filter((pl.col("ts") >= lo) & (pl.col("ts") < end))
    return FeatureInputs(**tables)  # type: ignore[arg-type]


def test_day_alone_equals_day_inside_a_longer_run(inputs: FeatureInputs) -> None:
    days = lookback_days()
    two = build_features(inputs, start=START, end=START + timedelta(days=2)).frame
    for offset in (0, 1):
        d0 = START + timedelta(days=offset)
        alone = build_features(
            _window(inputs, d0, d0 + timedelta(days=1), days), start=d0, end=d0 + timedelta(days=1)
        ).frame
        inside = two.filter((pl.col("ts") >= d0) & (pl.col("ts") < d0 + timedelta(days=1)))
        empty = [c for c in _names(alone) if alone[c].null_count() == alone.height]
        assert not empty, f"day {d0:%Y-%m-%d} alone has features without values: {empty[:10]}"
        _assert_close(alone, inside, rtol=2e-4, atol=1e-7, what=f"day {d0:%Y-%m-%d} alone vs inside")


@pytest.mark.parametrize("history_days", [1, 7])
def test_warm_up_nulls_then_values_independent_of_extra_history(
    inputs: FeatureInputs, full: pl.DataFrame, history_days: int
) -> None:
    short = FeatureInputs(
        **{
            name: getattr(inputs, name).filter(pl.col("ts") >= START - timedelta(days=history_days))
            for name in KNOWN_AT
        }
    )
    frame = build_features(short, start=START, end=START + timedelta(days=1)).frame
    # history of a row = its close minus the close of the first bar of the grid
    hist_s = (frame["ts"] - (START - timedelta(days=history_days))).dt.total_seconds().to_numpy()
    checked = 0
    for name in _names(frame):
        lb = LOOKBACK_S[name]
        warm = hist_s < lb
        values = frame[name]
        assert values.filter(pl.Series(warm)).null_count() == int(warm.sum()), (
            f"{name}: values before warm-up"
        )
        if lb <= history_days * 86_400:  # fully warmed up in every row: equals the long-history value
            checked += 1
    enough = [n for n in _names(frame) if LOOKBACK_S[n] <= history_days * 86_400]
    _assert_close(
        frame.select("ts", "coin", *enough),
        full.select("ts", "coin", *enough),
        rtol=2e-4,
        atol=1e-7,
        what=f"{history_days}-day history vs {HISTORY}-day history",
    )
    assert checked == len(enough) and checked > 100


def test_full_history_has_every_feature(full: pl.DataFrame) -> None:
    assert len(_names(full)) == len(CATALOG) >= 500
    empty = [c for c in _names(full) if full[c].null_count() == full.height]
    assert not empty, f"features without any value on complete 1-minute inputs: {empty[:10]}"
    assert FeatureConfig().max_lookback_days == HISTORY
