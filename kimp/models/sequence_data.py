"""Data plumbing of the sequence model: row order, gap-aware windows, train-only scaling, labels.

Kept apart from the network so that the look-ahead rules can be read (and tested) on their own:

* rows are put in (coin, ts) order; a model's output is always mapped back to the caller's row order;
* the window of the row at ``ts`` is the ``steps`` consecutive bars of the same coin ENDING at ``ts``
  (inclusive), so it holds only data known at that bar's close;
* a window that crosses a gap (two bars of a coin further apart than one bar) or runs out of history
  does not exist: that row gets no prediction;
* windows are never materialised: the whole (n, features) float32 matrix is viewed with
  ``Tensor.unfold`` and a batch copies only its own windows.
"""

from __future__ import annotations

import os

# torch's OpenMP runtime reads OMP_WAIT_POLICY once, when torch is first imported. Its default (threads
# spin while waiting) makes 2 threads 6x SLOWER than 1 as soon as the 2 cores are shared with other jobs
# (measured on this machine under load: 2.9 s vs 0.45 s per batch); passive waiting keeps 2 threads the
# fastest choice at a negligible cost on an idle machine. Set in the environment, a user's choice wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from kimp.errors import KimpError
from kimp.models.base import CLASSES

SPLITS: tuple[str, ...] = ("train", "validation", "test")
_ROW = "__kimp_row"


class ModelInputError(KimpError, ValueError):
    """A frame handed to a model is unusable; the message names the model, the rows and what was expected."""

    def __init__(self, *, model: str, problem: str, expected: str, rows: pl.DataFrame | None = None) -> None:
        parts = [f"[{model}] {problem}", f"expected: {expected}"]
        if rows is not None and rows.height > 0:
            with pl.Config(tbl_rows=10, tbl_cols=8, tbl_width_chars=160):
                parts.append(f"offending rows ({rows.height}):\n{rows.head(10)}")
        super().__init__("\n".join(parts))


@dataclass(frozen=True)
class OrderedRows:
    """The frame's rows in (coin, ts) order, with the permutation back to the caller's order."""

    frame: pl.DataFrame  # sorted by coin, ts
    original_row: np.ndarray  # original_row[i] = caller's row number of sorted row i
    ts_us: np.ndarray  # int64 microseconds since the epoch (bar open, UTC)
    coin_code: np.ndarray  # int64, equal within a coin


def order_rows(frame: pl.DataFrame, *, model: str, required: Sequence[str]) -> OrderedRows:
    """Sort by (coin, ts) and reject what would silently corrupt windows: missing columns, null keys,
    duplicated (coin, ts)."""
    missing = [c for c in ("ts", "coin", *required) if c not in frame.columns]
    if missing:
        raise ModelInputError(
            model=model,
            problem=f"frame lacks columns {missing}",
            expected=f"columns ts, coin and {list(required)}",
        )
    if not isinstance(frame.schema["ts"], pl.Datetime):
        raise ModelInputError(
            model=model,
            problem=f"ts has dtype {frame.schema['ts']}",
            expected='ts as pl.Datetime("us", "UTC") (bar open time)',
        )
    null_keys = frame.filter(pl.col("ts").is_null() | pl.col("coin").is_null())
    if null_keys.height:
        raise ModelInputError(
            model=model, problem="null ts or coin", expected="every row keyed", rows=null_keys
        )
    ordered = frame.with_row_index(_ROW).sort(["coin", "ts"], maintain_order=True)
    ts_us = ordered.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64, copy=False)
    coin_code = ordered.get_column("coin").cast(pl.String).rank("dense").to_numpy().astype(np.int64)
    same_key = np.zeros(len(ts_us), dtype=bool)
    if len(ts_us) > 1:
        same_key[1:] = (coin_code[1:] == coin_code[:-1]) & (ts_us[1:] == ts_us[:-1])
    if same_key.any():
        dup = ordered.filter(pl.Series(same_key)).select("ts", "coin")
        raise ModelInputError(
            model=model, problem="duplicated (coin, ts)", expected="one bar per coin and ts", rows=dup
        )
    return OrderedRows(
        frame=ordered.drop(_ROW),
        original_row=ordered.get_column(_ROW).to_numpy().astype(np.int64),
        ts_us=ts_us,
        coin_code=coin_code,
    )


def infer_bar_seconds(rows: OrderedRows) -> int:
    """The bar length: the most common positive step between consecutive bars of one coin.

    The mode, not the minimum, so that a single odd timestamp does not redefine every other step as a gap.
    """
    same_coin = rows.coin_code[1:] == rows.coin_code[:-1]
    steps = np.diff(rows.ts_us)[same_coin]
    steps = steps[steps > 0]
    if steps.size == 0:
        raise ModelInputError(
            model="lstm",
            problem="cannot tell the bar length: no coin has two bars",
            expected="at least two consecutive bars of one coin",
        )
    values, counts = np.unique(steps, return_counts=True)
    bar_us = int(values[np.argmax(counts)])
    if bar_us % 1_000_000:
        raise ModelInputError(
            model="lstm",
            problem=f"bar length {bar_us} us is not whole seconds",
            expected="bars of whole seconds",
        )
    return bar_us // 1_000_000


def full_window_mask(rows: OrderedRows, *, steps: int, bar_seconds: int) -> np.ndarray:
    """True for the (sorted) rows that end a window of ``steps`` consecutive bars of their coin.

    A run of consecutive bars restarts at every new coin and every gap; a row ends a full window when at
    least ``steps - 1`` bars of its run precede it. Because runs never cross coins, the window of a valid
    row can be read straight out of the concatenated matrix (rows ``i - steps + 1 .. i``).
    """
    n = len(rows.ts_us)
    if n == 0:
        return np.zeros(0, dtype=bool)
    position = np.arange(n, dtype=np.int64)
    run_starts = np.ones(n, dtype=bool)
    run_starts[1:] = (rows.coin_code[1:] != rows.coin_code[:-1]) | (
        np.diff(rows.ts_us) != bar_seconds * 1_000_000
    )
    run_start_position = np.maximum.accumulate(np.where(run_starts, position, 0))
    return position - run_start_position >= steps - 1


def feature_matrix(frame: pl.DataFrame, features: Sequence[str], *, model: str) -> np.ndarray:
    """(n, len(features)) float32 with NaN where a value is null or not finite (scaling turns it into 0)."""
    bad = [c for c in features if not (frame.schema[c].is_numeric() or frame.schema[c] == pl.Boolean)]
    if bad:
        raise ModelInputError(
            model=model,
            problem=f"non-numeric feature columns {bad}",
            expected="numeric or boolean feature columns",
        )
    x = frame.select(pl.col(c).cast(pl.Float32) for c in features).to_numpy().astype(np.float32, copy=False)
    x = np.ascontiguousarray(x)
    x[~np.isfinite(x)] = np.nan
    return x


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardisation fitted on TRAIN rows only (so validation/test never shape the inputs)."""

    mean: np.ndarray  # float64 (n_features,)
    std: np.ndarray  # float64 (n_features,); 1.0 where a feature is constant or absent in train

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        x64 = x.astype(np.float64)
        seen = np.isfinite(x64).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            total = np.nansum(x64, axis=0)
            mean = np.where(seen > 0, total / np.maximum(seen, 1), 0.0)
            var = np.where(seen > 1, np.nansum((x64 - mean) ** 2, axis=0) / np.maximum(seen - 1, 1), 0.0)
        std = np.sqrt(var)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardise; a missing value becomes 0 = the train mean, with no extra indicator column."""
        z = ((x.astype(np.float64) - self.mean) / self.std).astype(np.float32)
        z[np.isnan(z)] = 0.0
        return np.ascontiguousarray(z)

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> Scaler:
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float64), std=np.asarray(data["std"], dtype=np.float64)
        )


class WindowSource:
    """Windows of a (n, f) matrix without copies: ``Tensor.unfold`` makes a (n - steps + 1, f, steps) view
    and a batch gathers only its own window ends."""

    def __init__(self, x: np.ndarray, *, steps: int, device: torch.device) -> None:
        self.steps = steps
        self.matrix = torch.from_numpy(x).to(device)
        self.windows = self.matrix.unfold(0, steps, 1)  # a view: window w = rows w .. w + steps - 1

    def batch(self, ends: torch.Tensor) -> torch.Tensor:
        """(b, steps, f) inputs of the windows ending at the sorted rows ``ends`` (all must be full windows)."""
        return self.windows[ends - (self.steps - 1)].transpose(1, 2).contiguous()


def labels_and_splits(
    frame: pl.DataFrame, *, label_col: str, split_col: str, model: str
) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 (-1 = unknown) and split names ("" = history only); reject labels outside the
    classes and unknown split names."""
    label = frame.get_column(label_col)
    bad_label = frame.filter(label.is_not_null() & ~label.is_in(list(range(len(CLASSES)))))
    if bad_label.height:
        raise ModelInputError(
            model=model,
            problem=f"{label_col} has values outside the classes",
            expected="0 = down, 1 = flat, 2 = up, or null",
            rows=bad_label.select("ts", "coin", label_col),
        )
    split = frame.get_column(split_col).cast(pl.String)
    bad_split = frame.filter(split.is_not_null() & ~split.is_in(list(SPLITS)))
    if bad_split.height:
        raise ModelInputError(
            model=model,
            problem=f"{split_col} has unknown values",
            expected=f"one of {SPLITS} or null (a history-only row: inside windows, never a sample)",
            rows=bad_split.select("ts", "coin", split_col),
        )
    return np.array(label.fill_null(-1).cast(pl.Int64).to_numpy()), np.array(split.fill_null("").to_numpy())
