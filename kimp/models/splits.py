"""Chronological train/validation/test splits and purged k-fold CV for overlapping labels.

A row's *label window* is [ts, label_known_at]: the label uses data up to label_known_at. Two rows leak
into each other when their windows overlap, and rows just after a window still share its information
through look-back features. So between two sets used against each other we require

    label_known_at(earlier row) + embargo <= ts(later row)

(purging drops the earlier rows that break it; the embargo adds a gap of at least the horizon).

``purged_kfold`` follows de Prado (Advances in Financial ML, ch. 7): contiguous test folds in time; the
training rows are on BOTH sides of the test fold. Rows before it are purged (their label window must close
before the fold starts, plus the embargo), rows after it are embargoed (they start only after every test
label is known, plus the embargo). Both sides are used because the CV serves hyper-parameter tuning on a
short window, where dropping the folds after the test would leave the first folds almost no data; the
final walk-forward model is still trained strictly on the past.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

SPLITS: tuple[str, ...] = ("train", "validation", "test")


def _as_us(values: pl.Series | np.ndarray) -> np.ndarray:
    """Datetimes as int64 microseconds (polars Datetime('us') series or numpy datetime64)."""
    if isinstance(values, pl.Series):
        return values.cast(pl.Datetime("us")).dt.epoch("us").to_numpy()
    return np.asarray(values).astype("datetime64[us]").astype(np.int64)


def chronological_split(
    ts: pl.Series,
    label_known_at: pl.Series,
    *,
    fractions: tuple[float, float, float],
    embargo: timedelta,
) -> pl.Series:
    """A ``split`` value per row (train/validation/test, null = purged), chronological by ``ts``.

    The purge gap between two sets is the longest label window (label_known_at - ts) plus the embargo. The
    gaps are taken out of the time span first and ``fractions`` share what remains, so the kept sets keep
    about the asked proportions even for long horizons. Every train (validation) row whose label window plus
    the embargo reaches the start of validation (test) is then purged, read from the rows themselves.
    """
    t = _as_us(ts)
    known = _as_us(label_known_at)
    out = np.full(t.shape[0], None, dtype=object)
    if t.size == 0:
        return pl.Series("split", out, dtype=pl.String)
    gap = int(embargo / timedelta(microseconds=1))
    purge = int((known - t).max()) + gap
    first, last = int(t.min()), int(t.max())
    usable = (last - first) - 2 * purge
    if usable <= 0:  # the window is shorter than the gaps: nothing can be split honestly
        return pl.Series("split", out, dtype=pl.String)
    start_val = first + int(fractions[0] * usable) + purge
    start_test = start_val + int(fractions[1] * usable) + purge
    out[(t < start_val) & (known + gap <= start_val)] = "train"
    out[(t >= start_val) & (t < start_test) & (known + gap <= start_test)] = "validation"
    out[t >= start_test] = "test"
    return pl.Series("split", out, dtype=pl.String)


def purged_kfold(
    ts: pl.Series | np.ndarray,
    label_known_at: pl.Series | np.ndarray,
    n_folds: int,
    embargo: timedelta,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_folds`` (train_idx, test_idx) pairs of row positions, purged and embargoed as described above."""
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    t = _as_us(ts)
    known = _as_us(label_known_at)
    gap = int(embargo / timedelta(microseconds=1))
    times = np.unique(t)
    if times.size < n_folds:
        raise ValueError(f"{times.size} distinct bar times cannot make {n_folds} folds")
    bounds = np.linspace(0, times.size, n_folds + 1).round().astype(int)
    folds = []
    for k in range(n_folds):
        lo = times[bounds[k]]
        hi = times[bounds[k + 1] - 1]
        in_test = (t >= lo) & (t <= hi)
        test_known_end = known[in_test].max()
        before = (t < lo) & (known + gap <= lo)
        after = t >= test_known_end + gap
        folds.append((np.flatnonzero(before | after), np.flatnonzero(in_test)))
    return folds
