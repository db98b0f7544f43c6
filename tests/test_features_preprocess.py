"""Preprocessor (fitted on training rows only) and the ADF stationarity report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from kimp.features.preprocess import Preprocessor, adf_report


def _frame(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ts = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)]
    rows = []
    for coin, shift in (("BTC", 0.0), ("ETH", 5.0)):
        rows.append(
            pl.DataFrame(
                {
                    "ts": ts,
                    "coin": coin,
                    "a": rng.normal(shift, 1.0, n),
                    "b": rng.normal(0, 10.0, n),
                    "c": rng.normal(0, 1.0, n),
                }
            )
        )
    return pl.concat(rows)


FAMILIES = {"a": "fam1", "b": "fam1", "c": "fam2"}


def test_bounded_forward_fill_flags_and_training_medians() -> None:
    frame = _frame()
    train, test = frame.filter(pl.col("ts") < datetime(2024, 1, 1, 5, tzinfo=UTC)), frame
    holes = test.with_columns(
        pl.when(
            (pl.col("coin") == "ETH")
            & pl.col("ts").dt.minute().is_between(10, 19)
            & (pl.col("ts").dt.hour() == 5)
        )
        .then(None)
        .otherwise(pl.col("a"))
        .alias("a"),
        pl.when(pl.int_range(pl.len()) == 3).then(float("inf")).otherwise(pl.col("c")).alias("c"),
    )
    pre = Preprocessor(max_ffill=3, scale=False, outliers=False, families=FAMILIES).fit(
        train, ["a", "b", "c"]
    )
    out = pre.transform(holes)
    eth = out.filter((pl.col("coin") == "ETH") & (pl.col("ts").dt.hour() == 5)).sort("ts")
    before = holes.filter(
        (pl.col("coin") == "ETH") & (pl.col("ts") == datetime(2024, 1, 1, 5, 9, tzinfo=UTC))
    )["a"]
    assert eth["a"][10:13].to_list() == [before.item()] * 3  # three bars forward-filled from the same coin
    assert eth["a"][13:20].to_list() == [pytest.approx(pre.medians["a"])] * 7  # then the training median
    assert eth["missing__fam1"][10:20].all() and not eth["missing__fam1"][9]
    assert out.filter(pl.int_range(pl.len()) == 3)["missing__fam2"].item() is True  # inf counted as missing
    train_eth_median = float(train.filter(pl.col("coin") == "ETH")["a"].median())  # type: ignore[arg-type]
    assert pre.medians["a"] != pytest.approx(train_eth_median)  # pooled training median, not the test's
    assert out.select(pl.col("a", "b", "c").null_count().sum()).row(0) == (0, 0, 0)


def test_scaling_and_outliers_are_fitted_on_training_rows_only() -> None:
    frame = _frame(seed=1)
    train = frame.filter(pl.col("ts") < datetime(2024, 1, 1, 5, tzinfo=UTC))
    pre = Preprocessor(contamination=0.02, families=FAMILIES, seed=3).fit(train, ["a", "b", "c"])
    params = (dict(pre.center), dict(pre.scale_))
    extreme = frame.with_columns(  # a row far from every training row in every feature
        pl.when(pl.int_range(pl.len()) == 7).then(1e3).otherwise(pl.col(c)).alias(c) for c in ("a", "b", "c")
    )
    out = pre.transform(extreme)
    assert (dict(pre.center), dict(pre.scale_)) == params  # transform never refits
    scaled = out.filter(pl.col("coin") == "BTC").sort("ts")
    assert scaled.schema["a"] == pl.Float32
    assert abs(float(scaled["b"].median())) < 0.5  # type: ignore[arg-type]  # robust centre ~0
    row7 = out.with_row_index().filter(pl.col("b") == pl.col("b").max())
    assert row7["outlier"].item() is True
    assert row7["outlier_score"].item() == pytest.approx(out["outlier_score"].max())
    assert 0 < out["outlier"].mean() < 0.1  # type: ignore[operator]
    again = Preprocessor(contamination=0.02, families=FAMILIES, seed=3).fit_transform(train, ["a", "b", "c"])
    assert again["outlier_score"].equals(pre.transform(train)["outlier_score"])  # seeded


def test_columns_empty_in_training_stay_null_and_are_listed() -> None:
    frame = _frame().with_columns(pl.lit(None, pl.Float32).alias("d"))
    pre = Preprocessor(families={**FAMILIES, "d": "fam3"}).fit(frame, ["a", "b", "c", "d"])
    assert pre.empty_columns == ["d"]
    out = pre.transform(frame)
    assert out["d"].null_count() == out.height and out["missing__fam3"].all()
    with pytest.raises(ValueError, match="not in the frame"):
        pre.transform(frame.drop("c"))


def test_adf_report_tells_random_walk_from_noise() -> None:
    rng = np.random.default_rng(5)
    n = 1500
    frame = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)],
            "coin": "BTC",
            "walk": np.cumsum(rng.normal(size=n)),
            "noise": rng.normal(size=n),
            "flat": np.ones(n),
            "short": [None] * (n - 10) + list(rng.normal(size=10)),
        }
    )
    report = adf_report(frame, ["walk", "noise", "flat", "short"], max_rows=1000)
    rows = {r["column"]: r for r in report.iter_rows(named=True)}
    assert rows["noise"]["stationary"] is True and rows["noise"]["n_obs"] == 1000
    assert rows["walk"]["stationary"] is False and rows["walk"]["p_value"] > 0.05
    assert rows["flat"]["note"] == "constant" and rows["flat"]["p_value"] is None
    assert rows["short"]["note"].startswith("too few")
    assert report.columns == [
        "column",
        "coin",
        "n_obs",
        "adf_stat",
        "p_value",
        "used_lag",
        "stationary",
        "note",
    ]
