"""The training frame of day D: features joined with labels, cut off before D, split chronologically.

The model of day D may only learn from labels that were known before D minus the embargo:
``label_known_at < cutoff = day_start(D) - embargo``. The window starts ``window_days`` before the cutoff.
Inside it, ``split`` is train / validation / test (chronological 70/15/15 by default) with purging and an
embargo between sets (kimp.models.splits); purged rows are dropped.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from kimp.errors import KimpError
from kimp.models.base import WalkForwardConfig
from kimp.models.labels import LAST_CHANGE, LAST_MOVE
from kimp.models.splits import chronological_split
from kimp.timeutil import day_bounds, day_start

# Columns that are never features: keys, targets, bookkeeping.
RESERVED: frozenset[str] = frozenset(
    {
        "ts",
        "coin",
        "horizon",
        "label",
        "label_known_at",
        "split",
        "kr_venue",
        "interval_s",
        "change",
        LAST_MOVE,
        LAST_CHANGE,
    }
)
_NUMERIC = (pl.Float32, pl.Float64, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


class DatasetError(KimpError):
    """The inputs cannot make a training frame (names the day and what was expected)."""


def cutoff(day: date, config: WalkForwardConfig) -> datetime:
    """Every training label must be known strictly before this instant."""
    return day_start(day) - timedelta(minutes=config.embargo)


def feature_columns(frame: pl.DataFrame) -> list[str]:
    """Numeric, non-reserved columns that hold at least one value (all-null families carry nothing)."""
    candidates = [c for c, t in frame.schema.items() if c not in RESERVED and isinstance(t, _NUMERIC)]
    if not candidates or frame.height == 0:
        return candidates
    counts = frame.select(pl.col(candidates).count()).row(0)
    return [c for c, n in zip(candidates, counts, strict=True) if n > 0]


def feature_matrix(frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    """Float32 matrix in ``features`` order; a feature absent from ``frame`` is all-NaN (nulls become NaN)."""
    schema = frame.schema  # built on every access (as is frame.columns): read it once
    missing = [c for c in features if c not in schema]
    if not missing and features and all(schema[c] == pl.Float32 for c in features):
        # the common case (the features table's columns are Float32): one conversion, nulls become NaN;
        # the per-column expressions below cost ~0.1 ms a column (70 ms for one row of the catalog)
        return np.ascontiguousarray(frame.select(features).to_numpy(), dtype=np.float32)
    if missing:
        frame = frame.with_columns([pl.lit(None, dtype=pl.Float32).alias(c) for c in missing])
    return frame.select([pl.col(c).cast(pl.Float32).fill_null(float("nan")) for c in features]).to_numpy()


def age_weights(train: pl.DataFrame, config: WalkForwardConfig) -> np.ndarray | None:
    """Sample weights that halve every ``config.sample_half_life_days`` of a row's age, measured from the
    newest training row (weight 1) back; None when the option is off (every row weighs the same). The age
    comes from the training rows' own times, so the weights use nothing from validation or test."""
    half_life = config.sample_half_life_days
    if half_life is None or train.height == 0:
        return None
    t = train["ts"].dt.epoch("s").to_numpy().astype(np.float64)
    age_days = (t.max() - t) / 86_400.0
    return np.power(0.5, age_days / half_life)


def training_frame(
    features: pl.DataFrame, labels: pl.DataFrame, *, day: date, config: WalkForwardConfig
) -> pl.DataFrame:
    """Features + labels of the window before ``day``, with a ``split`` column; sorted by coin, ts."""
    end = cutoff(day, config)
    start = end - timedelta(days=config.window_days)
    lab = labels.filter(
        (pl.col("horizon") == config.horizon_minutes)
        & pl.col("label").is_not_null()
        & (pl.col("label_known_at") < end)
        & (pl.col("ts") >= start)
    )
    feats = features.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    frame = feats.join(lab, on=["ts", "coin"], how="inner")
    if frame.height == 0:
        raise DatasetError(
            f"[models] partition {day}: no labelled feature rows in the training window "
            f"[{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC (features: {features.height} rows, labels: "
            f"{lab.height} rows known in the window); expected features and premium for the "
            f"{config.window_days} days before the day"
        )
    frame = frame.sort(["coin", "ts"])
    split = chronological_split(
        frame["ts"],
        frame["label_known_at"],
        fractions=config.split,
        embargo=timedelta(minutes=config.embargo),
    )
    frame = frame.with_columns(split).filter(pl.col("split").is_not_null())
    present = set(frame["split"].unique().to_list())
    if present != {"train", "validation", "test"}:
        raise DatasetError(
            f"[models] partition {day}: the window holds {frame.height} usable rows and only the splits "
            f"{sorted(present)} after purging; expected train, validation and test (widen window_days or "
            f"shorten the horizon/embargo: {config.embargo} min)"
        )
    # Every other bar of the window stays as history (split and label null): sequence models need
    # consecutive bars, and a purged or unlabelled bar is still a bar that happened. Nothing known on or
    # after the cutoff enters: those rows' labels are dropped with their split.
    history = feats.join(frame.select("ts", "coin"), on=["ts", "coin"], how="anti")
    return pl.concat([frame, history], how="diagonal_relaxed").sort(["coin", "ts"])


def scoring_frame(features: pl.DataFrame, *, day: date, history_bars: int = 0) -> pl.DataFrame:
    """Rows of day D, preceded by up to ``history_bars`` earlier bars per coin (sequence models need them).

    Nothing after the end of D is ever returned, so data after D cannot change the predictions of D.
    """
    lo, hi = day_bounds(day)
    past = features.filter(pl.col("ts") < hi)
    today = past.filter(pl.col("ts") >= lo)
    if history_bars <= 0:
        return today.sort(["coin", "ts"])
    history = (
        past.filter(pl.col("ts") < lo)
        .sort(["coin", "ts"])
        .group_by("coin", maintain_order=True)
        .tail(history_bars)
    )
    history = history.select(past.columns)
    return pl.concat([history, today], how="vertical_relaxed").sort(["coin", "ts"])
