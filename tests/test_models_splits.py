"""Training frame and splits: the cutoff, the window, purging and the embargo, asserted from the data."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from kimp.models.base import WalkForwardConfig
from kimp.models.dataset import DatasetError, cutoff, feature_columns, scoring_frame, training_frame
from kimp.models.labels import premium_labels
from kimp.models.splits import chronological_split, purged_kfold
from kimp.testing import synthetic_market
from kimp.timeutil import day_start

DAY = date(2024, 1, 6)


@pytest.fixture(scope="module")
def market() -> tuple[pl.DataFrame, pl.DataFrame]:
    return synthetic_market(date(2024, 1, 1), 6, n_features=8, n_null_features=2)


@pytest.mark.parametrize("horizon, embargo", [(60, None), (240, 300)])
def test_training_rows_end_before_the_cutoff_and_splits_never_overlap(market, horizon, embargo) -> None:
    features, premium = market
    config = WalkForwardConfig(horizon_minutes=horizon, embargo_minutes=embargo, window_days=3)
    whole = training_frame(features, premium_labels(premium, config), day=DAY, config=config)
    # bars without a usable label stay as history: no split, no label, nothing known at the cutoff
    history = whole.filter(pl.col("split").is_null())
    assert (
        history["label"].null_count() == history.height
        and history["label_known_at"].null_count() == history.height
    )
    frame = whole.filter(pl.col("split").is_not_null())
    assert whole["ts"].max() < cutoff(DAY, config)
    gap = timedelta(minutes=config.embargo)
    assert gap >= timedelta(minutes=horizon)
    # no training row's label is known at or after D - embargo
    assert frame["label_known_at"].max() < day_start(DAY) - gap
    assert frame["label_known_at"].max() < cutoff(DAY, config)
    assert frame["ts"].min() >= cutoff(DAY, config) - timedelta(days=config.window_days)
    assert frame["label"].null_count() == 0
    # chronological, and every earlier set's label windows close an embargo before the next set starts
    spans = frame.group_by("split").agg(
        first=pl.col("ts").min(), last_known=pl.col("label_known_at").max(), n=pl.len()
    )
    span = {r["split"]: r for r in spans.iter_rows(named=True)}
    assert set(span) == {"train", "validation", "test"}
    assert span["train"]["last_known"] + gap <= span["validation"]["first"]
    assert span["validation"]["last_known"] + gap <= span["test"]["first"]
    shares = np.array([span[s]["n"] for s in ("train", "validation", "test")]) / frame.height
    assert shares[0] > 0.6 and 0.1 < shares[1] < 0.2 and 0.1 < shares[2] < 0.2
    # sorted by coin then time, as FittedModel expects
    assert whole.equals(whole.sort(["coin", "ts"]))


def test_cutoff_moves_with_the_day_and_future_rows_never_enter(market) -> None:
    features, premium = market
    config = WalkForwardConfig(window_days=2)
    labels = premium_labels(premium, config)
    early = training_frame(features, labels, day=date(2024, 1, 4), config=config)
    assert early["label_known_at"].max() < day_start(date(2024, 1, 4)) - timedelta(minutes=60)
    assert early["ts"].min() >= day_start(date(2024, 1, 4)) - timedelta(minutes=60) - timedelta(days=2)


def test_too_short_a_window_names_the_day(market) -> None:
    features, premium = market
    config = WalkForwardConfig(window_days=2)
    with pytest.raises(DatasetError, match="2024-01-01"):
        training_frame(features, premium_labels(premium, config), day=date(2024, 1, 1), config=config)


def test_feature_columns_skip_keys_labels_and_all_null_families(market) -> None:
    features, _ = market
    cols = feature_columns(features)
    assert "f_signal" in cols and "ts" not in cols and "coin" not in cols
    assert not any(c.startswith("f_missing_family") for c in cols)


def test_scoring_frame_never_returns_rows_after_the_day(market) -> None:
    features, _ = market
    frame = scoring_frame(features, day=date(2024, 1, 3), history_bars=10)
    end = day_start(date(2024, 1, 4))
    assert frame["ts"].max() < end
    before = frame.filter(pl.col("ts") < day_start(date(2024, 1, 3)))
    assert before.group_by("coin").len()["len"].to_list() == [10, 10]
    assert frame.columns == features.columns


def _ts_known(n_bars: int, horizon_min: int) -> tuple[pl.Series, pl.Series]:
    config = WalkForwardConfig(horizon_minutes=horizon_min)
    _, premium = synthetic_market(date(2024, 1, 1), 1, n_features=2, n_null_features=0, interval_s=60)
    labels = premium_labels(premium, config).drop_nulls("label").head(n_bars)
    return labels["ts"], labels["label_known_at"]


def test_chronological_split_purges_overlapping_labels() -> None:
    ts, known = _ts_known(600, 60)
    split = chronological_split(ts, known, fractions=(0.7, 0.15, 0.15), embargo=timedelta(minutes=60))
    frame = pl.DataFrame({"ts": ts, "known": known, "split": split})
    assert frame["split"].null_count() > 0  # purged rows exist
    kept = frame.drop_nulls("split")
    first_val = kept.filter(pl.col("split") == "validation")["ts"].min()
    assert kept.filter(pl.col("split") == "train")["known"].max() + timedelta(minutes=60) <= first_val


@pytest.mark.parametrize("n_folds", [3, 5])
def test_purged_kfold_train_rows_never_touch_the_test_fold(n_folds: int) -> None:
    ts, known = _ts_known(900, 60)
    embargo = timedelta(minutes=60)
    folds = purged_kfold(ts, known, n_folds, embargo)
    assert len(folds) == n_folds
    t = ts.dt.replace_time_zone(None).to_numpy()
    k = known.dt.replace_time_zone(None).to_numpy()
    embargo = np.timedelta64(60, "m")
    covered = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(covered), np.arange(len(t)))  # every row is tested exactly once
    for train, test in folds:
        assert len(train) > 0 and len(np.intersect1d(train, test)) == 0
        lo, hi_known = t[test].min(), k[test].max()
        before = train[t[train] < lo]
        after = train[t[train] > lo]
        assert (k[before] + embargo <= lo).all()  # purged: label closes an embargo before the fold
        assert (t[after] >= hi_known + embargo).all()  # embargoed after every test label is known
    with pytest.raises(ValueError):
        purged_kfold(ts, known, 1, embargo)
