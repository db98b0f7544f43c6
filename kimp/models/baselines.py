"""Baselines every model must beat: persistence of the last move, the majority class, logistic regression.

All three learn only from ``split == 'train'`` rows of a training frame and implement FittedModel.

- persistence: predicts that the move over the last horizon (column ``last_move``, see
  kimp.models.labels.last_move; known at the close of bar ts) repeats. Its probabilities put the training
  hit rate of that rule on the repeated class and split the rest evenly, so the argmax is pure persistence
  while the log-loss stays finite. Rows without a last move get the training class frequencies.
- majority: the training class frequencies for every row (argmax = the majority class).
- logistic: multinomial logistic regression on the same features (median imputation and standard scaling
  fitted on the training rows; L2 strength chosen on the validation rows).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.models.base import WalkForwardConfig
from kimp.models.dataset import age_weights, feature_columns, feature_matrix
from kimp.models.labels import LAST_MOVE, label_rule

SIDECAR = "model.json"


def class_frequencies(labels: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """Laplace-smoothed frequencies of classes 0, 1, 2 (never zero, so the log-loss stays finite)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=3)[:3].astype(np.float64) + smoothing
    return counts / counts.sum()


def _train(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("split") == "train") if "split" in frame.columns else frame


@dataclass
class MajorityModel:
    """Training class frequencies for every row."""

    priors: np.ndarray
    name: str = "majority"
    features: list[str] = field(default_factory=list)

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return np.tile(self.priors, (frame.height, 1))

    def predict_proba_rows(self, x: np.ndarray) -> np.ndarray:
        return np.tile(self.priors, (x.shape[0], 1))

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / SIDECAR).write_text(
            json.dumps({"type": "majority", "name": self.name, "priors": self.priors.tolist()})
        )

    @classmethod
    def load(cls, path: Path) -> MajorityModel:
        meta = json.loads((Path(path) / SIDECAR).read_text())
        return cls(priors=np.asarray(meta["priors"]), name=meta["name"])


@dataclass
class PersistenceModel:
    """The last move repeats, with its training hit rate as confidence."""

    hit_rate: float
    priors: np.ndarray
    name: str = "persistence"
    features: list[str] = field(default_factory=lambda: [LAST_MOVE])
    # The label rule its ``last_move`` input was made with (kimp.models.labels.LABEL_RULE fields of the
    # training config: horizon, flat band, venue, premium column), so that serving computes the same input
    # from live premium rows (kimp.serving.live); None for models saved before it was kept.
    label_rule: dict[str, Any] | None = None

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        if LAST_MOVE not in frame.columns:
            raise ValueError(f"persistence needs the {LAST_MOVE!r} column (kimp.models.labels.last_move)")
        return self.predict_proba_rows(frame[LAST_MOVE].cast(pl.Float64).fill_null(float("nan")).to_numpy())

    def predict_proba_rows(self, x: np.ndarray) -> np.ndarray:
        """``x``: the last move (its one feature) per row, as a column or a vector."""
        last = np.asarray(x, dtype=np.float64).reshape(-1)
        out = np.tile(self.priors, (last.shape[0], 1))
        known = ~np.isnan(last)
        other = (1.0 - self.hit_rate) / 2.0
        out[known] = other
        out[np.flatnonzero(known), last[known].astype(np.int64)] = self.hit_rate
        return out

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "type": "persistence",
            "name": self.name,
            "hit_rate": self.hit_rate,
            "priors": self.priors.tolist(),
            "label_rule": self.label_rule,
        }
        (path / SIDECAR).write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: Path) -> PersistenceModel:
        meta = json.loads((Path(path) / SIDECAR).read_text())
        return cls(
            hit_rate=float(meta["hit_rate"]),
            priors=np.asarray(meta["priors"]),
            name=meta["name"],
            label_rule=meta.get("label_rule"),
        )


@dataclass(frozen=True)
class LogisticParams:
    """The logistic baseline's parameters (override through ``config.model_params["logistic"]``).

    ``c`` (inverse L2 strength) is chosen from ``c_grid`` by the log-loss on the training frame's validation
    rows (the test rows and the predicted day never enter); give ``c`` to fix it. Strong regularisation
    matters here: a few hundred hourly rows against ~260 features overfit at C = 0.1 (out-of-sample
    log-loss 2.3-3.3 on real days, worse than the class prior's 1.1)."""

    c: float | None = None
    c_grid: tuple[float, ...] = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 1.0)
    max_rows: int = 50_000  # training rows, thinned evenly in time beyond this

    def __post_init__(self) -> None:
        if (self.c is not None and self.c <= 0) or not self.c_grid or min(self.c_grid) <= 0:
            raise ValueError(f"logistic c and c_grid must be positive, got {self.c}, {self.c_grid}")


@dataclass
class LogisticModel:
    """Multinomial logistic regression (scikit-learn pipeline: median imputation, scaling)."""

    pipeline: Any
    features: list[str]
    name: str = "logistic"

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return self.predict_proba_rows(feature_matrix(frame, self.features))

    def predict_proba_rows(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)  # float64: rows sum to 1 within 1e-12
        out = np.zeros((x.shape[0], 3))
        if x.shape[0]:
            # Classes absent from training keep probability 0 (the model never saw them).
            out[:, self.pipeline.classes_.astype(np.int64)] = self.pipeline.predict_proba(x)
        return out

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with (path / "pipeline.pkl").open("wb") as fh:
            pickle.dump(self.pipeline, fh)
        (path / SIDECAR).write_text(
            json.dumps({"type": "logistic", "name": self.name, "features": self.features})
        )

    @classmethod
    def load(cls, path: Path) -> LogisticModel:
        path = Path(path)
        meta = json.loads((path / SIDECAR).read_text())
        with (path / "pipeline.pkl").open("rb") as fh:
            pipeline = pickle.load(fh)  # our own artifact, written by save()
        return cls(pipeline=pipeline, features=list(meta["features"]), name=meta["name"])


def fit_majority(frame: pl.DataFrame) -> MajorityModel:
    return MajorityModel(priors=class_frequencies(_train(frame)["label"].to_numpy()))


def fit_persistence(frame: pl.DataFrame, config: WalkForwardConfig | None = None) -> PersistenceModel:
    """Hit rate of 'the last move repeats' on the training rows that have a last move. ``config``: the
    training config whose label rule made ``last_move`` (kept with the model for serving)."""
    train = _train(frame)
    if LAST_MOVE not in train.columns:
        raise ValueError(f"persistence needs the {LAST_MOVE!r} column (kimp.models.labels.last_move)")
    known = train.filter(pl.col(LAST_MOVE).is_not_null())
    hits = int((known[LAST_MOVE] == known["label"]).sum()) if known.height else 0
    hit_rate = (hits + 1.0) / (known.height + 3.0)  # smoothed towards 1/3 on little data
    return PersistenceModel(
        hit_rate=hit_rate,
        priors=class_frequencies(train["label"].to_numpy()),
        label_rule=label_rule(config) if config is not None else None,
    )


def fit_logistic(
    frame: pl.DataFrame,
    config: WalkForwardConfig,
    *,
    features: list[str] | None = None,
    max_rows: int | None = None,
) -> LogisticModel:
    """Median imputation and standard scaling fitted on the training rows, then L2-regularised multinomial
    logistic regression with C chosen on the validation rows (LogisticParams). ``max_rows`` (default
    LogisticParams.max_rows) thins the rows evenly in time to bound the cost on minute bars, where
    neighbouring rows are nearly duplicates."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    train = _train(frame)
    cols = features if features is not None else feature_columns(train)
    params = LogisticParams(**config.params_for("logistic"))
    limit = max_rows or params.max_rows
    if train.height > limit:
        train = train.gather_every(int(np.ceil(train.height / limit)))
    imputer = SimpleImputer(strategy="median", keep_empty_features=True)
    scaler = StandardScaler()
    x = scaler.fit_transform(imputer.fit_transform(feature_matrix(train, cols).astype(np.float64)))
    y = train["label"].to_numpy()
    weight = age_weights(train, config)  # after the thinning: the rows fitted
    valid = frame.filter(pl.col("split") == "validation") if "split" in frame.columns else frame.clear()
    grid = (params.c,) if params.c is not None else tuple(sorted(params.c_grid))
    if valid.height < 20:
        grid = grid[-1:] if params.c is not None else (0.01,)  # nothing to choose on: strong L2
    best: tuple[float, Any] | None = None
    if len(grid) > 1:
        if valid.height > limit:
            valid = valid.gather_every(int(np.ceil(valid.height / limit)))
        xv = scaler.transform(imputer.transform(feature_matrix(valid, cols).astype(np.float64)))
        yv = valid["label"].to_numpy().astype(np.int64)
    for c in grid:  # from strong to weak regularisation
        model = LogisticRegression(C=c, max_iter=300, random_state=config.seed)  # type: ignore[arg-type]
        model.fit(x, y, sample_weight=weight)
        if len(grid) == 1:
            best = (0.0, model)
            break
        p = np.full((len(yv), 3), 1e-12)
        p[:, model.classes_.astype(np.int64)] = np.maximum(model.predict_proba(xv), 1e-12)
        loss = float(-np.mean(np.log(p[np.arange(len(yv)), yv] / p.sum(axis=1))))
        if best is None or loss < best[0] - 1e-9:
            best = (loss, model)
    assert best is not None
    pipeline = Pipeline([("impute", imputer), ("scale", scaler), ("logistic", best[1])])
    return LogisticModel(pipeline=pipeline, features=cols)


# The registry's fit functions (kimp.models.registry): every baseline learns from the train rows only.


def fit_majority_spec(
    frame: pl.DataFrame, config: WalkForwardConfig, *, features: list[str], params: dict[str, Any] | None
) -> MajorityModel:
    return fit_majority(frame)


def fit_persistence_spec(
    frame: pl.DataFrame, config: WalkForwardConfig, *, features: list[str], params: dict[str, Any] | None
) -> PersistenceModel:
    return fit_persistence(frame, config)


def fit_logistic_spec(
    frame: pl.DataFrame, config: WalkForwardConfig, *, features: list[str], params: dict[str, Any] | None
) -> LogisticModel:
    return fit_logistic(frame, config, features=features)
