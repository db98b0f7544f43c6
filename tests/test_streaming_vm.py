"""The streaming program computes each expression operation as polars does, bar by bar.

Every operation the families use is compiled on its own and stepped through a series with nulls, NaN,
monotone runs (the sliding minimum's worst case) and flat stretches, then compared with the polars
lowering of the same expression evaluated on the whole column.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from kimp.features.expr import Expr, col, ewm, lit, marked_quantile, max_horizontal, ndtr, rolling_ols, when
from kimp.features.types import FeatureConfig
from kimp.streaming.compiler import CompiledFeatures, _assemble, _Builder

N = 400


def _frame(seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.r_[np.arange(40, 0, -1.0), rng.normal(0, 1, N - 100), np.full(20, 2.5), np.arange(40.0)]
    y = rng.normal(0, 1, N) + 0.5 * x
    x[rng.random(N) < 0.1] = np.nan  # becomes null
    y[rng.random(N) < 0.05] = np.nan
    nan_at = rng.random(N) < 0.02
    ts = [datetime(2024, 1, 5, 23, 0, tzinfo=UTC) + timedelta(minutes=i) for i in range(N)]
    return pl.DataFrame({"ts": ts, "x": x, "y": y}).with_columns(
        pl.col("x").fill_nan(None),
        pl.col("y").fill_nan(None),
        z=pl.when(pl.Series(nan_at)).then(float("nan")).otherwise(pl.col("y").fill_nan(0.0)),
        _close=pl.col("ts") + pl.duration(minutes=1),
    )


EXPRESSIONS: dict[str, Expr] = {
    "arith": (col("x") * 2 + col("y")) / (col("y") - 1.5) - col("x") ** 2,
    "log_sqrt": (col("x").abs() + 0.0).log() + col("y").sqrt(),
    "div0": (col("x") / (col("y") * 0.0)).fill_nan(0.0).clip(lower_bound=-1, upper_bound=1),
    "compare": (col("x") > col("y")).cast(pl.Float64) + (col("z") >= 0.3).cast(pl.Float64),
    "nan_compare": (col("z") > 100.0).cast(pl.Float64) - (col("z") == col("z")).cast(pl.Float64),
    "logic": ((col("x") > 0) & (col("y") < 0) | ~(col("x") > 1)).cast(pl.Float64),
    "nulls": col("x").is_null().cast(pl.Float64) + col("y").is_not_null().cast(pl.Float64),
    "fill": col("x").fill_null(0.25) + col("z").fill_nan(None) + col("z").fill_nan(7.0),
    "clip": col("x").clip(lower_bound=0) + col("y").clip(lower_bound=-1, upper_bound=1),
    "when": when(col("x") > 0)
    .then(col("x"))
    .when(col("y") > 0)
    .then(1.0)
    .otherwise(when(col("y").is_not_null()).then(-1.0)),
    "when_open": when(col("x") > 1).then(col("y")),
    "max_h": max_horizontal(col("x") - 1.0, lit(0.0)).sqrt() + max_horizontal(col("z"), lit(0.5)),
    "shift_diff": col("x").shift(3) - col("y").diff(2) + col("z").diff(1),
    "sum": col("x").rolling_sum(window_size=9, min_samples=4),
    "mean": col("z").rolling_mean(window_size=12, min_samples=6),
    "std": col("x").rolling_std(window_size=15, min_samples=7)
    + col("y").rolling_std(window_size=5, min_samples=2, ddof=0),
    # running sums' hazards: a large offset, and small variances after huge ones left the window
    "std_offset": (col("y") + 1e8).rolling_std(window_size=25, min_samples=10),
    "std_regime": (col("x") ** 4).rolling_std(window_size=30, min_samples=10),
    "min_max": col("x").rolling_max(window_size=9, min_samples=4)
    - col("y").rolling_min(window_size=11, min_samples=5),
    "nan_window": col("z").rolling_max(window_size=6, min_samples=3)
    + col("z").rolling_std(window_size=6, min_samples=3),
    "ewm": ewm(col("x"), alpha=2 / 13, window=24, min_count=12),
    "ewm_of_ewm": ewm(ewm(col("y"), alpha=0.2, window=18, min_count=9), alpha=0.5, window=6, min_count=3),
    "ols": rolling_ols(col("x"), col("y"), window=20, min_count=10),
    "ndtr": ndtr(col("y") / 2).fill_nan(None),
    "quantile": marked_quantile(
        col("_close"), col("y"), q=0.25, step_s=300, window=12, min_samples=6, hold=4
    ),
    "calendar": col("ts").dt.hour().cast(pl.Float64) * 60
    + col("ts").dt.convert_time_zone("Asia/Seoul").dt.minute().cast(pl.Float64)
    + col("ts").dt.convert_time_zone("Asia/Seoul").dt.weekday().cast(pl.Float64),
    "age": (col("_close") - col("ts")).dt.total_seconds().cast(pl.Float64) / 3600,
    "warm_mask": when(col("x").rolling_mean(window_size=30, min_samples=15).is_not_null()).then(
        col("y").shift(30)
    ),
}


def _compile(exprs: dict[str, Expr]) -> CompiledFeatures:
    builder = _Builder({}, 60, FeatureConfig())
    outputs = np.array([builder.emit(e.cast(pl.Float32)) for e in exprs.values()])
    program = _assemble(builder, tuple(exprs), outputs, [], [True] * len(exprs))
    return CompiledFeatures(program, FeatureConfig(), 60)


def _polars(frame: pl.DataFrame, exprs: dict[str, Expr]) -> np.ndarray:
    out = frame.select([e.cast(pl.Float32).to_polars().alias(k) for k, e in exprs.items()])
    values = out.to_numpy().astype(np.float64)
    values[~np.isfinite(values)] = np.nan  # the build's finite rule
    return values


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_each_operation_matches_polars_bar_by_bar(name: str) -> None:
    frame = _frame()
    exprs = {name: EXPRESSIONS[name]}
    program = _compile(exprs)
    live = np.vstack([program.step(row) for row in frame.iter_rows(named=True)])
    batch = _polars(frame, exprs)
    nb, nl = np.isnan(batch), np.isnan(live)
    assert (nb == nl).all(), f"{name}: nulls differ at rows {np.flatnonzero((nb != nl).any(axis=1))[:10]}"
    both = ~nb
    assert both.sum() > N // 4, f"{name}: too few values to compare"
    np.testing.assert_allclose(live[both], batch[both], rtol=1e-6, atol=1e-12, err_msg=name)


def test_warm_up_in_one_call_equals_stepping_and_ticks_leave_no_trace() -> None:
    frame = _frame(seed=9)
    stepped = _compile(EXPRESSIONS)
    per_bar = [stepped.step(row) for row in frame.iter_rows(named=True)]
    warmed = _compile(EXPRESSIONS)
    warmed.warm(frame.head(N - 50))
    rows = list(frame.tail(50).iter_rows(named=True))
    for k, row in enumerate(rows):
        # a provisional evaluation (a tick) between bars must not change what the next bar computes
        probe = dict(row, x=123.0, y=None)
        warmed.step(probe, commit=False, tick=True)
        warmed.step(probe, commit=False)
        got = warmed.step(row)
        np.testing.assert_allclose(got, per_bar[N - 50 + k], rtol=1e-9, atol=1e-12, equal_nan=True)
