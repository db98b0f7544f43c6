"""Preprocessing fitted on training rows only, and the ADF stationarity report.

Preprocessor.transform, in this order (the documented rule for missing and bad values):
1. non-finite values (NaN, +-inf) become null;
2. one Boolean flag per family, ``missing__<family>``, is set where any of the family's columns is
   null in the raw row (one flag per family rather than ~650 per-column flags: the columns of a family
   go missing together, because they share a source table);
3. bounded forward fill: a null takes the last value of the same coin at most ``max_ffill`` bars back
   (never across coins, never from the future);
4. what is still null takes the training median of the column (columns without any training value
   stay null and are listed in ``empty_columns``);
5. RobustScaler (median / IQR, fitted on the training rows) when ``scale`` is on;
6. IsolationForest (fitted on the training rows) adds ``outlier_score`` (higher = more anomalous) and
   ``outlier`` (Boolean, the forest's own decision at ``contamination``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:  # sklearn and statsmodels are imported when used: importing kimp.features stays quick
    from sklearn.ensemble import IsolationForest

_CHUNK_ROWS = 100_000  # IsolationForest scoring in chunks keeps the float32 copy small


def _family_of(columns: Sequence[str]) -> dict[str, str]:
    from kimp.features.build import catalog

    families = {s.name: s.family for s in catalog()}
    return {c: families.get(c, "other") for c in columns}


@dataclass
class Preprocessor:
    max_ffill: int = 5  # bars
    contamination: float | str = 0.01  # IsolationForest: share of training rows called outliers, or "auto"
    scale: bool = True
    outliers: bool = True
    fit_max_rows: int = 200_000  # training rows sampled (seeded) for the scaler and the forest
    n_estimators: int = 100
    seed: int = 7
    group_column: str = "coin"
    families: dict[str, str] | None = None  # column -> family for the missing flags; default: the catalog

    columns: list[str] = field(default_factory=list, init=False)
    medians: dict[str, float] = field(default_factory=dict, init=False)
    empty_columns: list[str] = field(default_factory=list, init=False)
    center: dict[str, float] = field(default_factory=dict, init=False)
    scale_: dict[str, float] = field(default_factory=dict, init=False)
    forest: IsolationForest | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.max_ffill < 0:
            raise ValueError(f"max_ffill must be >= 0 bars, got {self.max_ffill}")
        if isinstance(self.contamination, float) and not 0.0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5] or 'auto', got {self.contamination}")

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, frame: pl.DataFrame, columns: Sequence[str]) -> Preprocessor:
        """Learn medians, scaling and the outlier forest from ``frame`` (the training rows only)."""
        from sklearn.ensemble import IsolationForest
        from sklearn.preprocessing import RobustScaler

        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"Preprocessor.fit: columns {missing[:5]} are not in the frame")
        self.columns = list(columns)
        if self.families is None:
            self.families = _family_of(self.columns)
        clean = self._filled(self._finite(frame))
        medians = clean.select(pl.col(self.columns).median()).row(0, named=True)
        self.empty_columns = [c for c in self.columns if medians[c] is None]
        self.medians = {c: float(v) for c, v in medians.items() if v is not None}
        usable = [c for c in self.columns if c in self.medians]
        sample = clean.select(usable)
        if sample.height > self.fit_max_rows:
            sample = sample.sample(self.fit_max_rows, seed=self.seed)
        x = (
            sample.with_columns(pl.col(c).fill_null(self.medians[c]) for c in usable)
            .to_numpy()
            .astype(np.float64)
        )
        scaler = RobustScaler().fit(x) if x.size else None
        if scaler is not None:
            scales = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
            self.center = dict(zip(usable, scaler.center_.tolist(), strict=True))
            self.scale_ = dict(zip(usable, scales.tolist(), strict=True))
        if self.outliers and x.shape[0] >= 16 and usable:
            z = (x - scaler.center_) / np.where(scaler.scale_ > 0, scaler.scale_, 1.0) if self.scale else x
            self.forest = IsolationForest(
                n_estimators=self.n_estimators, contamination=self.contamination, random_state=self.seed
            ).fit(z.astype(np.float32))
        return self

    # ------------------------------------------------------------------------------------ transform
    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        if not self.columns:
            raise RuntimeError("Preprocessor.transform before fit")
        absent = [c for c in self.columns if c not in frame.columns]
        if absent:
            raise ValueError(f"Preprocessor.transform: columns {absent[:5]} seen in fit are not in the frame")
        raw = self._finite(frame)
        assert self.families is not None
        by_family: dict[str, list[str]] = {}
        for c in self.columns:
            by_family.setdefault(self.families.get(c, "other"), []).append(c)
        flags = [
            pl.any_horizontal(pl.col(cols).is_null()).alias(f"missing__{fam}")
            for fam, cols in by_family.items()
        ]
        out = raw.with_columns(flags)
        out = self._filled(out)
        out = out.with_columns(pl.col(c).fill_null(self.medians[c]) for c in self.medians)
        if self.scale:
            out = out.with_columns(
                ((pl.col(c) - self.center[c]) / self.scale_[c]).cast(pl.Float32).alias(c) for c in self.center
            )
        if self.forest is not None:
            usable = list(self.center) if self.scale else list(self.medians)
            scores, labels = [], []
            for offset in range(0, out.height, _CHUNK_ROWS):
                chunk = out.slice(offset, _CHUNK_ROWS).select(usable).to_numpy().astype(np.float32)
                decision = self.forest.decision_function(chunk)  # score_samples - offset_; < 0 = outlier
                scores.append(-(decision + self.forest.offset_))
                labels.append(decision < 0)
            out = out.with_columns(
                outlier_score=pl.Series(np.concatenate(scores) if scores else [], dtype=pl.Float32),
                outlier=pl.Series(np.concatenate(labels) if labels else [], dtype=pl.Boolean),
            )
        return out

    def fit_transform(self, frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
        return self.fit(frame, columns).transform(frame)

    # -------------------------------------------------------------------------------------- helpers
    def _finite(self, frame: pl.DataFrame) -> pl.DataFrame:
        floats = [c for c in self.columns if frame.schema[c] in (pl.Float32, pl.Float64)]
        return frame.with_columns(pl.when(pl.col(floats).is_finite()).then(pl.col(floats)).name.keep())

    def _filled(self, frame: pl.DataFrame) -> pl.DataFrame:
        if self.max_ffill == 0:
            return frame
        order = [c for c in (self.group_column, "ts") if c in frame.columns]
        frame = frame.sort(order) if order else frame
        fill = pl.col(self.columns).fill_null(strategy="forward", limit=self.max_ffill)
        if self.group_column in frame.columns:
            fill = fill.over(self.group_column)
        return frame.with_columns(fill)


def adf_report(
    frame: pl.DataFrame,
    columns: Sequence[str],
    *,
    max_rows: int = 2_000,
    max_lag: int = 12,
    alpha: float = 0.05,
    group_column: str = "coin",
) -> pl.DataFrame:
    """Augmented Dickey-Fuller test per feature (and per coin when the frame has one).

    Uses the last ``max_rows`` non-null values of each series (a contiguous stretch: thinning would
    change the dynamics the test looks at), a constant, and a fixed ``max_lag`` (autolag would cost
    ~20x more over 650 features). ``stationary`` = p_value < alpha. Constant or short series get a note
    and null statistics.
    """
    from statsmodels.tsa.stattools import adfuller

    groups = (
        frame.partition_by(group_column, as_dict=True) if group_column in frame.columns else {("all",): frame}
    )
    rows: list[dict[str, object]] = []
    for key, part in sorted(groups.items(), key=lambda kv: str(kv[0])):
        part = part.sort("ts") if "ts" in part.columns else part
        name = str(key[0]) if isinstance(key, tuple) else str(key)
        for col in columns:
            values = part[col].cast(pl.Float64)
            values = values.filter(values.is_finite()).tail(max_rows).to_numpy()
            row: dict[str, object] = {
                "column": col,
                group_column: name,
                "n_obs": int(values.size),
                "adf_stat": None,
                "p_value": None,
                "used_lag": None,
                "stationary": None,
                "note": None,
            }
            if values.size < max(30, 3 * max_lag):
                row["note"] = f"too few observations ({values.size})"
            elif np.ptp(values) == 0:
                row["note"] = "constant"
            else:
                stat, p_value, used_lag, *_ = adfuller(values, maxlag=max_lag, regression="c", autolag=None)
                row.update(
                    adf_stat=float(stat),
                    p_value=float(p_value),
                    used_lag=int(used_lag),
                    stationary=bool(p_value < alpha),
                )
            rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "column": pl.String,
            group_column: pl.String,
            "n_obs": pl.Int64,
            "adf_stat": pl.Float64,
            "p_value": pl.Float64,
            "used_lag": pl.Int64,
            "stationary": pl.Boolean,
            "note": pl.String,
        },
    )
