"""One walk-forward day in plain Python: the steps the Dagster assets call, one function each.

For day D (kimp_pipelines.assets.models runs one asset per step; ``train_day`` / ``predict_day`` run the
same functions in order, for benchmarks and notebooks):

1. ``training_dataset``: features joined with labels known before ``D - embargo``, split train /
   validation / test (kimp.models.dataset); asserted from the rows themselves.
2. ``fit_member(spec, frame, config, ...)`` for every configured member (kimp.models.registry order: a
   model whose features another ranks comes after it) and every baseline: the spec's feature policy picks
   the columns, ``spec.fit`` fits, the validation rows are scored (each with the bars before it as history,
   never the bars after: :func:`validation_scores`), and an overconfident model is temperature-scaled on
   those rows (kimp.models.calibration).
3. ``fit_day_ensemble``: every candidate scores the validation rows; one that scores fewer than
   ``config.ensemble_min_coverage`` of them is left out (and said so); the weights of the rest are fitted
   on the rows they ALL scored, so every weight is learnt from the same rows. The ensemble is then the
   validated choice among that mixture, its members and the baselines (``config.ensemble_select``).
4. ``predictions_frame``: every model scores the bars of D, with ``config.history_bars`` earlier bars per
   coin for sequence models and nothing after D (kimp.models.dataset.scoring_frame).
5. ``kimp.models.evaluation.evaluate`` scores them once labels are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl

from kimp.market_data.schemas import UTC_TS
from kimp.models import registry
from kimp.models.base import FittedModel, WalkForwardConfig
from kimp.models.calibration import Calibrated, fit_temperature, scale
from kimp.models.dataset import DatasetError, cutoff, feature_columns, scoring_frame, training_frame
from kimp.models.decision import choose, fit_class_weights
from kimp.models.ensemble import MIXTURE, EnsembleModel, fit_weights
from kimp.models.evaluation import evaluate, scores
from kimp.models.labels import LAST_MOVE, Target, last_move, make_labels
from kimp.models.registry import ModelSpec
from kimp.timeutil import day_bounds, in_day

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
# A baseline the day's ensemble falls back on when no member can score enough validation rows.
FALLBACK = "logistic"


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


def training_dataset(
    features: pl.DataFrame,
    premium: pl.DataFrame | None,
    *,
    day: date,
    config: WalkForwardConfig,
    target: Target = "premium",
    candles: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The training frame of D (kimp.models.dataset.training_frame, with ``last_move``). Raises if a row
    holds a label known on or after the cutoff: asserted from the data, not from the code that made it."""
    if not features.width or (premium is not None and not premium.width):
        raise DatasetError(
            f"[models] partition {day}: no features or premium for the {config.window_days} days before it; "
            "materialize market data and features for the window first (kimp walk-forward does)"
        )
    labels = labels_with_last_move(config, premium=premium, candles=candles, target=target)
    frame = training_frame(features, labels, day=day, config=config)
    end = cutoff(day, config)
    latest = frame["label_known_at"].max()
    if latest is not None and latest >= end:  # type: ignore[operator]
        raise AssertionError(
            f"training_dataset {day}: a label known at {latest} is not before the cutoff {end}"
        )
    return frame


def validation_scores(model: FittedModel, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) of the training frame's validation rows. The model scores the frame up to
    the last validation bar, so each validation row has the bars before it as history (a sequence model's
    window) and no row after the validation split is ever shown; rows it cannot score are NaN."""
    is_val = pl.col("split") == "validation"
    last = frame.filter(is_val)["ts"].max()
    if last is None:
        return np.empty((0, 3)), np.empty(0, dtype=np.int64)
    upto = frame.filter(pl.col("ts") <= last)
    mask = (upto["split"] == "validation").fill_null(False).to_numpy()
    p = np.asarray(model.predict_proba(upto), dtype=np.float64)[mask]
    return p, upto.filter(pl.Series(mask))["label"].to_numpy().astype(np.int64)


def _scored(p: np.ndarray) -> np.ndarray:
    return np.isfinite(p).all(axis=1) if len(p) else np.zeros(0, dtype=bool)


def validation_metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Log-loss, macro-F1, accuracy on the rows scored, with the share of rows scored (``coverage``)."""
    ok = _scored(p)
    out: dict[str, float] = {"rows": float(len(y)), "coverage": float(ok.mean()) if len(y) else 0.0}
    if ok.any():
        s = scores(p[ok], y[ok])
        out.update({k: float(s[k]) for k in ("log_loss", "macro_f1", "accuracy")})  # type: ignore[arg-type]
    return out


@dataclass
class MemberFit:
    """One model fitted for day D: the model (calibrated when it was), its columns, and how it validated."""

    name: str
    model: FittedModel
    features: list[str]
    feature_rule: str
    temperature: float
    validation: dict[str, float]
    train_rows: int
    params: dict[str, Any] = field(default_factory=dict)


def fit_member(
    spec: ModelSpec,
    frame: pl.DataFrame,
    config: WalkForwardConfig,
    *,
    fitted: Mapping[str, FittedModel] | None = None,
    params: dict[str, Any] | None = None,
) -> MemberFit:
    """Fit ``spec`` on the training frame of D (module docstring, step 2). ``fitted``: models already fitted
    today (those that rank this one's features); ``params``: tuned parameters, or None for the defaults."""
    train = frame.filter(pl.col("split") == "train")
    features, rule = spec.features.resolve(feature_columns(train), fitted or {})
    model = spec.fit_model(frame, config, features=features, params=params)
    p, y = validation_scores(model, frame)
    temperature = 1.0
    if spec.calibrate and config.calibrate:
        temperature = fit_temperature(p, y)
        if temperature != 1.0:
            model, p = Calibrated(model, temperature), scale(p, temperature)
    return MemberFit(
        name=spec.name,
        model=model,
        features=list(model.features),
        feature_rule=rule,
        temperature=temperature,
        validation=validation_metrics(p, y),
        train_rows=train.height,
        params=dict(params or {}),
    )


@dataclass
class EnsembleFit:
    """The day's ensemble: its weights, the rows they were fitted on, who was left out and why, and the
    validated choice (``chosen``: ``mixture`` or the member or baseline that validated best; ``choice``:
    each option's validation macro-F1 with its validated class weights; ``class_weights``: those weights,
    (down, flat, up))."""

    model: EnsembleModel
    coverage: dict[str, float]
    left_out: dict[str, str]
    rows: int
    validation: dict[str, float]
    chosen: str = MIXTURE
    mixture_weights: dict[str, float] = field(default_factory=dict)  # the members' mixture, chosen or not
    choice: dict[str, float] = field(default_factory=dict)
    class_weights: dict[str, list[float]] = field(default_factory=dict)

    @property
    def note(self) -> str:
        """One line on the choice, saying so when the best validated model is a baseline."""
        if not self.choice:
            return f"the ensemble is the mixture of {', '.join(self.model.weights)}"
        best = self.choice[self.chosen]
        others = ", ".join(f"{k} {v:.3f}" for k, v in self.choice.items() if k != self.chosen)
        kind = "baseline " if self.chosen in self.baselines else ""
        return (
            f"the ensemble is the {kind}{self.chosen} (best validation macro-F1 with validated class weights, "
            f"{best:.3f}; {others})"
        )

    @property
    def baselines(self) -> set[str]:
        return set(registry.names(kind="direction", role="baseline"))


def fit_day_ensemble(
    candidates: Mapping[str, FittedModel],
    frame: pl.DataFrame,
    config: WalkForwardConfig,
    *,
    fallback: Mapping[str, FittedModel] | None = None,
    baselines: Mapping[str, FittedModel] | None = None,
) -> EnsembleFit:
    """Weights over the candidates that score at least ``config.ensemble_min_coverage`` of the validation
    rows, fitted on the rows all of them scored (module docstring, step 3). When no candidate qualifies,
    the ``fallback`` models (the logistic baseline) stand in, said so in ``left_out``.

    With ``config.ensemble_select`` the ensemble is then the validated choice among that mixture, the
    candidates it kept and the ``baselines``: the one whose validation macro-F1 with its validated class
    weights (kimp.models.decision) is highest, ties to the mixture, then the members, then the baselines,
    so the ensemble is never worse on validation than the best of them; a chosen member or baseline is
    the ensemble alone (weight 1). All options are scored on the validation rows every one of them scored.
    The mixture's weights were fitted on the same validation rows, so the
    comparison slightly favours it; the test split stays untouched."""
    scored = {n: validation_scores(m, frame) for n, m in candidates.items()}
    n_rows = len(next(iter(scored.values()))[1]) if scored else 0
    coverage = {n: float(_scored(p).mean()) if len(p) else 0.0 for n, (p, _) in scored.items()}
    need = config.ensemble_min_coverage
    kept = {n: candidates[n] for n in candidates if coverage[n] >= need}
    left_out = {
        n: f"scored {coverage[n]:.0%} of the {n_rows} validation rows (needs {need:.0%})"
        for n in candidates
        if n not in kept
    }
    if not kept and fallback:
        for n, m in fallback.items():
            scored[n] = validation_scores(m, frame)
            coverage[n] = float(_scored(scored[n][0]).mean()) if len(scored[n][0]) else 0.0
        kept = dict(fallback)
        left_out["(fallback)"] = f"no member qualified; the ensemble stands on {', '.join(fallback)}"
    if not kept:
        raise DatasetError(
            f"[models] no ensemble candidate scores {need:.0%} of the {n_rows} validation rows: {coverage}"
        )
    names = list(kept)
    y = scored[names[0]][1]
    common = np.logical_and.reduce([_scored(scored[n][0]) for n in names])
    weights = fit_weights([scored[n][0][common] for n in names], y[common])
    model = EnsembleModel(members=kept, weights=dict(zip(names, map(float, weights), strict=True)))
    p = model.combine({n: scored[n][0] for n in names})
    fit = EnsembleFit(
        model=model,
        coverage=coverage,
        left_out=left_out,
        rows=int(common.sum()),
        validation=validation_metrics(p, y),
        mixture_weights=dict(model.weights),
    )
    if not config.ensemble_select:
        return fit
    options: dict[str, tuple[FittedModel, np.ndarray, np.ndarray]] = {MIXTURE: (model, p, y)}
    options.update({n: (kept[n], *scored[n]) for n in names})
    for n, m in (baselines or {}).items():
        if n not in options:
            options[n] = (m, *validation_scores(m, frame))
    # Every option is judged on the same rows (those all of them scored): one that abstains on hard rows
    # must not win by it.
    same = np.logical_and.reduce([_scored(pn) for _, pn, _ in options.values()])
    for n, (_, pn, yn) in options.items():
        w, f1 = fit_class_weights(pn[same], yn[same])
        fit.class_weights[n] = [float(x) for x in w]
        fit.choice[n] = f1
    fit.chosen = choose(fit.choice)
    if fit.chosen != MIXTURE:
        chosen_model, pc, yc = options[fit.chosen]
        fit.model = EnsembleModel(members={fit.chosen: chosen_model}, weights={fit.chosen: 1.0})
        fit.validation = validation_metrics(pc, yc)
    fit.model.chosen = fit.chosen
    fit.model.class_weights = tuple(fit.class_weights[fit.chosen])
    return fit


def _predict_all(models: Mapping[str, FittedModel], frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Every model's probabilities; an ensemble reuses its members' scores instead of scoring them again."""
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


def long_predictions(frame: pl.DataFrame, probas: Mapping[str, np.ndarray], horizon: int) -> pl.DataFrame:
    """PREDICTIONS rows: one per row of ``frame`` and model."""
    label = (
        frame["label"]
        if "label" in frame.columns
        else pl.Series("label", [None] * frame.height, dtype=pl.Int8)
    )
    parts = [
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
        for name, p in probas.items()
    ]
    if not parts:
        return pl.DataFrame(schema=PREDICTIONS)
    return pl.concat(parts).select([pl.col(c).cast(t) for c, t in PREDICTIONS.items()])


def predictions_frame(
    models: Mapping[str, FittedModel],
    features_with_history: pl.DataFrame,
    premium: pl.DataFrame | None,
    *,
    day: date,
    config: WalkForwardConfig,
    target: Target = "premium",
    candles: pl.DataFrame | None = None,
    labels_as_of: datetime | None = None,
) -> pl.DataFrame:
    """PREDICTIONS rows for every bar of D, coin and model (module docstring, step 4). ``label`` is the
    realized class where the data given already holds it (or, with ``labels_as_of``, knew it by then)."""
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
    out = long_predictions(
        frame.filter(today), {n: p[today] for n, p in probas.items()}, config.horizon_minutes
    )
    # A model that cannot score a bar (no full window yet) leaves it null, not NaN.
    out = out.with_columns(pl.col("p_down", "p_flat", "p_up").fill_nan(None))
    return in_day(out, day).sort(["model", "coin", "ts"])


@dataclass
class DayModels:
    """Everything ``train_day`` fitted for day D."""

    day: date
    config: WalkForwardConfig
    frame: pl.DataFrame
    fits: dict[str, MemberFit]
    ensemble: EnsembleFit
    test_metrics: pl.DataFrame

    @property
    def models(self) -> dict[str, FittedModel]:
        """Members, baselines and ``ensemble``: what ``predict_day`` scores."""
        return {**{n: f.model for n, f in self.fits.items()}, "ensemble": self.ensemble.model}

    @property
    def cutoff(self) -> datetime:
        return cutoff(self.day, self.config)

    @property
    def last_label_known_at(self) -> datetime:
        return self.frame["label_known_at"].max()  # type: ignore[return-value]


def train_day(
    features: pl.DataFrame,
    premium: pl.DataFrame | None,
    *,
    day: date,
    config: WalkForwardConfig,
    tuned_params: Mapping[str, dict[str, Any]] | None = None,
    target: Target = "premium",
    candles: pl.DataFrame | None = None,
) -> DayModels:
    """Steps 1-3 for day D, in order (the assets run the same functions one per asset); the test split
    scores every model (``test_metrics``)."""
    frame = training_dataset(features, premium, day=day, config=config, target=target, candles=candles)
    fits: dict[str, MemberFit] = {}
    for spec in registry.members(config.models):
        fitted = {n: f.model for n, f in fits.items()}
        fits[spec.name] = fit_member(
            spec, frame, config, fitted=fitted, params=(tuned_params or {}).get(spec.name)
        )
    members = {n: f.model for n, f in fits.items()}
    for spec in registry.specs(kind="direction", role="baseline"):
        fits[spec.name] = fit_member(spec, frame, config)
    fallback = {FALLBACK: fits[FALLBACK].model} if FALLBACK in fits else None
    baselines = {n: f.model for n, f in fits.items() if n not in members}
    ensemble = fit_day_ensemble(members, frame, config, fallback=fallback, baselines=baselines)
    models = {**{n: f.model for n, f in fits.items()}, "ensemble": ensemble.model}
    # The test rows are the window's last: scored with every earlier bar as history, nothing after them.
    is_test = (frame["split"] == "test").fill_null(False).to_numpy()
    probas = _predict_all(models, frame)
    test_rows = frame.filter(pl.Series(is_test))
    metrics = evaluate(
        long_predictions(test_rows, {n: p[is_test] for n, p in probas.items()}, config.horizon_minutes)
    )
    return DayModels(day=day, config=config, frame=frame, fits=fits, ensemble=ensemble, test_metrics=metrics)


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
    """Step 4 for every model ``train_day`` fitted (members, baselines, ensemble)."""
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
