"""Optuna search of a model's parameters: seeded TPE, median pruning, purged k-fold CV.

Any registered model with a search space is tuned the same way (kimp.models.registry): each trial fits
the model with ``spec.fit`` on the training rows of each fold and scores the fold's test rows.
Objective: the mean multi-class log-loss over ``config.cv_folds`` purged folds (kimp.models.splits) of the
training frame's train + validation rows (the test split stays unseen). Log-loss rather than macro-F1
because it scores the probabilities the ensemble and the sizing use, and it is smooth, so the median pruner
can compare trials fold by fold: after each fold the running mean is reported and a trial worse than the
median of earlier trials at the same fold is pruned.

Inside CV a fold has no validation rows, so nothing early-stops on the test fold; the boosting models
search ``num_boost_round`` instead, which becomes the cap of the daily fit (that fit early-stops on its own
validation split).

Cost control on 2 cores: the rows are thinned evenly in time to ``config.tune_max_rows`` (default
12,000). On 1-minute bars with a 1-hour horizon neighbouring rows share 59 of 60 minutes of their label, so
thinning loses little information.

Studies live in Optuna RDB storage (``storage_url``, e.g. sqlite:///<KIMP_HOME>/optuna.db); running
``tune`` again on the same study completes its budget of ``config.n_trials`` finished trials instead of
adding a new budget, so a retried materialization does not tune twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from kimp.models.base import WalkForwardConfig
from kimp.models.dataset import feature_columns
from kimp.models.registry import ModelSpec
from kimp.models.splits import purged_kfold

_EPS = 1e-12


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1.0))))


def cv_rows(frame: pl.DataFrame, config: WalkForwardConfig) -> pl.DataFrame:
    """Train + validation rows (test left out), thinned evenly in time to at most tune_max_rows."""
    rows = frame.filter(pl.col("split").is_in(["train", "validation"])) if "split" in frame.columns else frame
    rows = rows.sort(["ts", "coin"])
    limit = config.tune_max_rows
    if rows.height > limit:
        rows = rows.gather_every(int(np.ceil(rows.height / limit)))
    return rows


def tune(
    spec: ModelSpec,
    frame: pl.DataFrame,
    config: WalkForwardConfig,
    storage_url: str,
    study_name: str,
    *,
    n_trials: int | None = None,
) -> dict[str, Any]:
    """Run the study to ``n_trials`` (default config.n_trials) finished trials; return the best params."""
    import optuna

    if not spec.tunable:
        raise ValueError(f"{spec.name} has no search space: nothing to tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    rows = cv_rows(frame, config).drop("split", strict=False)
    features = feature_columns(rows)
    y = rows["label"].to_numpy().astype(np.int64)
    folds = purged_kfold(
        rows["ts"], rows["label_known_at"], config.cv_folds, timedelta(minutes=config.embargo)
    )

    def objective(trial: optuna.Trial) -> float:
        params = spec.suggest(trial)
        losses = []
        for step, (train_idx, test_idx) in enumerate(folds):
            if train_idx.size == 0 or test_idx.size == 0:
                continue
            train = rows[train_idx].with_columns(split=pl.lit("train"))
            model = spec.fit_model(train, config, features=features, params=params)
            losses.append(log_loss(np.asarray(model.predict_proba(rows[test_idx])), y[test_idx]))
            trial.report(float(np.mean(losses)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(losses))

    study = optuna.create_study(
        study_name=study_name,
        storage=storage_url,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        load_if_exists=True,
    )
    study.set_user_attr("kind", spec.name)
    study.set_user_attr("objective", f"mean multi-class log-loss, {config.cv_folds}-fold purged CV")
    study.set_user_attr("horizon_minutes", config.horizon_minutes)
    study.set_user_attr("rows", rows.height)
    study.set_user_attr("features", len(features))
    budget = n_trials if n_trials is not None else config.n_trials
    finished = [t for t in study.trials if t.state.is_finished()]
    remaining = max(0, budget - len(finished))
    if remaining:
        study.optimize(objective, n_trials=remaining, n_jobs=1, gc_after_trial=True)
    return dict(study.best_trial.params)


def best_params(storage_url: str, study_name: str) -> dict[str, Any] | None:
    """The best parameters of a stored study, or None when it does not exist or has no finished trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return None
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return None
    return dict(study.best_trial.params)
