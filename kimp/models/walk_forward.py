"""One walk-forward step in plain Python: train the models of day D, then predict the bars of day D.

``train_day`` fits, on the training frame of D (kimp.models.dataset: labels known before D - embargo),
the configured models (xgboost, lightgbm, and the LSTM through an injected ``lstm_fit`` callable), the three
baselines, and the ensemble of the configured models whose weights are learnt on the validation split. The
test split scores every model (``DayModels.test_metrics``).

``predict_day`` scores the bars of D with every model, using only features with ts < end of D (plus
``config.history_bars`` earlier bars per coin, default 200, for sequence models), so data after D
cannot change the predictions. Labels are attached where the premium allows (null until the future bar
exists, or until ``labels_as_of`` when given).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.market_data.schemas import UTC_TS
from kimp.models.base import FittedModel, WalkForwardConfig
from kimp.models.baselines import fit_logistic, fit_majority, fit_persistence
from kimp.models.boosting import KINDS, fit_boosting
from kimp.models.dataset import cutoff, feature_columns, scoring_frame, training_frame
from kimp.models.ensemble import EnsembleModel, fit_ensemble
from kimp.models.evaluation import evaluate
from kimp.models.labels import LAST_MOVE, Target, last_move, make_labels
from kimp.models.registry import load_model
from kimp.timeutil import day_bounds, in_day

LstmFit = Callable[..., FittedModel]  # fit_lstm(frame, config, *, features=...) -> FittedModel

PREDICTIONS: dict[str, pl.DataType] = {
    "ts": UTC_TS,
    "coin": pl.String(),
    "horizon": pl.Int32(),
    "model": pl.String(),
    "p_down": pl.Float64(),
    "p_flat": pl.Float64(),
    "p_up": pl.Float64(),
    "label": pl.Int8(),
}
BASELINES: tuple[str, ...] = ("persistence", "majority", "logistic")


@dataclass
class DayModels:
    """Everything trained for day D. ``models`` holds the members, the baselines and ``ensemble``."""

    day: date
    config: WalkForwardConfig
    models: dict[str, FittedModel]
    members: list[str]
    features: list[str]
    cutoff: datetime
    last_label_known_at: datetime  # read from the training rows themselves: must be < cutoff
    split_rows: dict[str, int]
    test_metrics: pl.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why it was not trained

    def save(self, path: Path) -> None:
        """One folder per model (the ensemble stores only its weights) + day.json + test_metrics.csv."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, model in self.models.items():
            if not isinstance(model, EnsembleModel):
                model.save(path / name)
        ensemble = self.models.get("ensemble")
        meta = {
            "day": self.day.isoformat(),
            "config": {k: v for k, v in asdict(self.config).items()},
            "models": list(self.models),
            "members": self.members,
            "ensemble_weights": ensemble.weights if isinstance(ensemble, EnsembleModel) else None,
            "features": self.features,
            "cutoff": self.cutoff.isoformat(),
            "last_label_known_at": self.last_label_known_at.isoformat(),
            "split_rows": self.split_rows,
            "skipped": self.skipped,
        }
        (path / "day.json").write_text(json.dumps(meta, indent=1, default=str))
        self.test_metrics.write_csv(path / "test_metrics.csv")

    @classmethod
    def load(cls, path: Path) -> DayModels:
        path = Path(path)
        meta = json.loads((path / "day.json").read_text())
        cfg = dict(meta["config"])
        cfg["split"] = tuple(cfg["split"])
        cfg["models"] = tuple(cfg["models"])
        models: dict[str, FittedModel] = {n: load_model(path / n) for n in meta["models"] if n != "ensemble"}
        if meta["ensemble_weights"] is not None:
            weights = {k: float(v) for k, v in meta["ensemble_weights"].items()}
            models["ensemble"] = EnsembleModel(members={n: models[n] for n in weights}, weights=weights)
        return cls(
            day=date.fromisoformat(meta["day"]),
            config=WalkForwardConfig(**cfg),
            models=models,
            members=list(meta["members"]),
            features=list(meta["features"]),
            cutoff=datetime.fromisoformat(meta["cutoff"]),
            last_label_known_at=datetime.fromisoformat(meta["last_label_known_at"]),
            split_rows={k: int(v) for k, v in meta["split_rows"].items()},
            test_metrics=pl.read_csv(path / "test_metrics.csv"),
            skipped=dict(meta["skipped"]),
        )


def labels_with_last_move(
    config: WalkForwardConfig,
    *,
    premium: pl.DataFrame | None,
    candles: pl.DataFrame | None = None,
    target: Target = "premium",
) -> pl.DataFrame:
    """Labels plus ``last_move`` (the persistence baseline's input, known at the close of bar ts)."""
    labels = make_labels(config, premium=premium, candles=candles, target=target)
    return labels.join(last_move(labels), on=["ts", "coin"], how="left")


def _predict_all(models: dict[str, FittedModel], frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Every model's probabilities; the ensemble reuses its members' instead of scoring them again."""
    out = {
        n: np.asarray(m.predict_proba(frame), dtype=np.float64)
        for n, m in models.items()
        if not isinstance(m, EnsembleModel)
    }
    for n, m in models.items():
        if isinstance(m, EnsembleModel):
            out[n] = m.combine(
                {k: out[k] if k in out else m.members[k].predict_proba(frame) for k in m.members}
            )
    return out


def _long(frame: pl.DataFrame, probas: dict[str, np.ndarray], horizon: int) -> pl.DataFrame:
    parts = []
    label = (
        frame["label"]
        if "label" in frame.columns
        else pl.Series("label", [None] * frame.height, dtype=pl.Int8)
    )
    for name, p in probas.items():
        parts.append(
            pl.DataFrame(
                {
                    "ts": frame["ts"],
                    "coin": frame["coin"],
                    "horizon": pl.Series([horizon] * frame.height, dtype=pl.Int32),
                    "model": [name] * frame.height,
                    "p_down": p[:, 0],
                    "p_flat": p[:, 1],
                    "p_up": p[:, 2],
                    "label": label,
                }
            )
        )
    if not parts:
        return pl.DataFrame(schema=PREDICTIONS)
    return pl.concat(parts).select([pl.col(c).cast(t) for c, t in PREDICTIONS.items()])


def train_day(
    features: pl.DataFrame,
    premium: pl.DataFrame | None,
    *,
    day: date,
    config: WalkForwardConfig,
    tuned_params: dict[str, dict[str, Any]] | None = None,
    lstm_fit: LstmFit | None = None,
    target: Target = "premium",
    candles: pl.DataFrame | None = None,
) -> DayModels:
    """Fit the configured models, the baselines and the ensemble for day D (see module docstring).

    ``tuned_params`` maps a boosting kind to its (tuned) params; ``lstm_fit`` is
    kimp.models.sequence.fit_lstm or None (then "lstm" in config.models is skipped and noted in ``skipped``).
    """
    labels = labels_with_last_move(config, premium=premium, candles=candles, target=target)
    frame = training_frame(features, labels, day=day, config=config)
    feats = feature_columns(frame.filter(pl.col("split") == "train"))
    members: dict[str, FittedModel] = {}
    skipped: dict[str, str] = {}
    for name in config.models:
        if name in KINDS:
            members[name] = fit_boosting(name, frame, config, (tuned_params or {}).get(name), features=feats)
        elif name == "lstm":
            if lstm_fit is None:
                skipped[name] = "no lstm_fit callable was given"
                continue
            members[name] = lstm_fit(frame, config, features=feats)
        else:
            raise ValueError(f"unknown model {name!r} in config.models: expected xgboost, lightgbm or lstm")
    baselines: dict[str, FittedModel] = {
        "persistence": fit_persistence(frame),
        "majority": fit_majority(frame),
        "logistic": fit_logistic(frame, config, features=feats),
    }
    if not members:  # nothing configured could be trained: the ensemble stands on the logistic baseline
        members = {"logistic": baselines["logistic"]}
    # Members score the whole window once: a sequence model then has history before the validation rows.
    member_probas = _predict_all(members, frame)
    is_val = (frame["split"] == "validation").fill_null(False).to_numpy()
    ensemble = fit_ensemble(
        members,
        frame.filter(pl.col("split") == "validation"),
        member_probas={n: p[is_val] for n, p in member_probas.items()},
    )
    models: dict[str, FittedModel] = {**members, **baselines, "ensemble": ensemble}
    is_test = (frame["split"] == "test").fill_null(False).to_numpy()
    test = frame.filter(pl.col("split") == "test")
    test_probas = {n: member_probas[n][is_test] for n in members}
    test_probas.update(
        _predict_all({n: m for n, m in models.items() if n not in members and n != "ensemble"}, test)
    )
    test_probas["ensemble"] = ensemble.combine({n: test_probas[n] for n in ensemble.members})
    counts = dict(frame.group_by("split").len().iter_rows())
    return DayModels(
        day=day,
        config=config,
        models=models,
        members=list(members),
        features=feats,
        cutoff=cutoff(day, config),
        last_label_known_at=frame["label_known_at"].max(),  # type: ignore[arg-type]
        split_rows={k: int(counts.get(k, 0)) for k in ("train", "validation", "test")},
        test_metrics=evaluate(_long(test, test_probas, config.horizon_minutes)),
        skipped=skipped,
    )


def predictions_frame(
    models: dict[str, FittedModel],
    features_with_history: pl.DataFrame,
    premium: pl.DataFrame | None,
    *,
    day: date,
    config: WalkForwardConfig,
    target: Target = "premium",
    candles: pl.DataFrame | None = None,
    labels_as_of: datetime | None = None,
) -> pl.DataFrame:
    """PREDICTIONS rows for every bar of D, coin and model in ``models`` (e.g. loaded from disk)."""
    frame = scoring_frame(features_with_history, day=day, history_bars=config.history_bars)
    labels = labels_with_last_move(config, premium=premium, candles=candles, target=target)
    if labels_as_of is not None:
        labels = labels.with_columns(
            label=pl.when(pl.col("label_known_at") <= labels_as_of).then(pl.col("label")).otherwise(None)
        )
    # last_move of a bar of D uses premium up to that bar's close only, so it never sees data after D.
    frame = frame.join(labels.select("ts", "coin", "label", LAST_MOVE), on=["ts", "coin"], how="left").sort(
        ["coin", "ts"]
    )
    probas = _predict_all(models, frame)
    lo, hi = day_bounds(day)
    today = ((frame["ts"] >= lo) & (frame["ts"] < hi)).to_numpy()
    out = _long(frame.filter(today), {n: p[today] for n, p in probas.items()}, config.horizon_minutes)
    return in_day(out, day).sort(["model", "coin", "ts"])


def predict_day(
    models: DayModels,
    features_with_history: pl.DataFrame,
    premium: pl.DataFrame | None,
    *,
    day: date,
    config: WalkForwardConfig,
    target: Target = "premium",
    candles: pl.DataFrame | None = None,
    labels_as_of: datetime | None = None,
) -> pl.DataFrame:
    """PREDICTIONS rows for every bar of D, coin and model of ``train_day`` (ensemble and baselines)."""
    return predictions_frame(
        models.models,
        features_with_history,
        premium,
        day=day,
        config=config,
        target=target,
        candles=candles,
        labels_as_of=labels_as_of,
    )
