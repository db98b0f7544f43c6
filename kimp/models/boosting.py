"""Gradient-boosted direction models (XGBoost and LightGBM) with early stopping on the validation split.

Both are sized for 2 CPU cores: histogram trees with 63 bins, 40 % of the columns per tree and at most
``num_boost_round`` rounds (150 by default) stopped early when the validation log-loss has not improved
for ``early_stopping_rounds``. Threads are capped at 2 (``config.n_jobs``, default 1) and every
random draw is seeded from ``config.seed`` (LightGBM also runs in its deterministic mode), so the same data
and seed give the same model. Models are saved in the libraries' native text formats plus a JSON sidecar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from kimp.models.base import WalkForwardConfig
from kimp.models.dataset import age_weights, feature_columns, feature_matrix

BoostingKind = Literal["xgboost", "lightgbm"]
KINDS: tuple[str, ...] = ("xgboost", "lightgbm")
SIDECAR = "model.json"

# Shared knobs, in one vocabulary; translated per library below. Tuning (kimp.models.tuning) searches them.
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_depth": 6,
    "num_leaves": 31,
    "min_child_weight": 20.0,
    "subsample": 0.8,
    "colsample": 0.4,
    "reg_lambda": 1.0,
    "max_bin": 63,
    "num_boost_round": 150,
    "early_stopping_rounds": 15,
}


def threads_for(config: WalkForwardConfig) -> int:
    """One thread unless config.n_jobs says 2: with the other core busy (a second run, the daemon),
    OpenMP's spinning threads made a 100-row fit take 6-22 s instead of 0.2 s here."""
    return max(1, min(2, config.n_jobs))


def _xgb_params(p: dict[str, Any], seed: int, threads: int) -> dict[str, Any]:
    return {
        "objective": "multi:softprob",
        "num_class": 3,
        "eval_metric": "mlogloss",
        "tree_method": "hist",
        "max_bin": int(p["max_bin"]),
        "eta": float(p["learning_rate"]),
        "max_depth": int(p["max_depth"]),
        "min_child_weight": float(p["min_child_weight"]),
        "subsample": float(p["subsample"]),
        "colsample_bytree": float(p["colsample"]),
        "lambda": float(p["reg_lambda"]),
        "nthread": threads,
        "seed": seed,
        "verbosity": 0,
    }


def _lgb_params(p: dict[str, Any], seed: int, threads: int) -> dict[str, Any]:
    return {
        "objective": "multiclass",
        "num_class": 3,
        "metric": "multi_logloss",
        "learning_rate": float(p["learning_rate"]),
        "num_leaves": int(p["num_leaves"]),
        "max_depth": int(p["max_depth"]),
        "min_sum_hessian_in_leaf": float(p["min_child_weight"]) * 0.1,
        "min_data_in_leaf": 20,
        "bagging_fraction": float(p["subsample"]),
        "bagging_freq": 1,
        "feature_fraction": float(p["colsample"]),
        "lambda_l2": float(p["reg_lambda"]),
        "max_bin": int(p["max_bin"]),
        "num_threads": threads,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


@dataclass
class BoostingModel:
    """A fitted XGBoost or LightGBM classifier (FittedModel)."""

    name: str
    kind: str
    features: list[str]
    booster: Any
    params: dict[str, Any]
    best_iteration: int
    importance: pl.DataFrame = field(repr=False)

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return self.predict_proba_rows(feature_matrix(frame, self.features))

    def predict_proba_rows(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return np.empty((0, 3))
        if self.kind == "xgboost":
            import xgboost as xgb

            out = self.booster.predict(
                xgb.DMatrix(x, missing=np.nan), iteration_range=(0, self.best_iteration + 1)
            )
        else:
            # one thread: on 2 shared cores OpenMP's second thread costs more than it saves, and a
            # single served row (tens of microseconds of trees) would pay its start-up on every call
            out = self.booster.predict(x, num_iteration=self.best_iteration + 1, num_threads=1)
        return np.asarray(out, dtype=np.float64).reshape(-1, 3)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        model_file = "model.xgb.json" if self.kind == "xgboost" else "model.lgb.txt"
        if self.kind == "xgboost":
            self.booster.save_model(str(path / model_file))
        else:
            self.booster.save_model(str(path / model_file))
        self.importance.write_csv(path / "importance.csv")
        sidecar = {
            "type": "boosting",
            "kind": self.kind,
            "name": self.name,
            "features": self.features,
            "params": self.params,
            "best_iteration": self.best_iteration,
            "model_file": model_file,
        }
        (path / SIDECAR).write_text(json.dumps(sidecar, indent=1))

    @classmethod
    def load(cls, path: Path) -> BoostingModel:
        path = Path(path)
        meta = json.loads((path / SIDECAR).read_text())
        if meta["kind"] == "xgboost":
            import xgboost as xgb

            booster: Any = xgb.Booster()
            booster.load_model(str(path / meta["model_file"]))
        else:
            import lightgbm as lgb

            booster = lgb.Booster(model_file=str(path / meta["model_file"]))
        importance = pl.read_csv(path / "importance.csv")
        return cls(
            name=meta["name"],
            kind=meta["kind"],
            features=list(meta["features"]),
            booster=booster,
            params=dict(meta["params"]),
            best_iteration=int(meta["best_iteration"]),
            importance=importance,
        )


def _importance_frame(features: list[str], gains: dict[str, float]) -> pl.DataFrame:
    gain = np.array([float(gains.get(f, 0.0)) for f in features])
    total = gain.sum()
    return pl.DataFrame(
        {"feature": features, "gain": gain, "share": gain / total if total > 0 else gain}
    ).sort("gain", descending=True)


def train_arrays(
    kind: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray | None,
    y_valid: np.ndarray | None,
    params: dict[str, Any],
    *,
    seed: int,
    threads: int,
    weight: np.ndarray | None = None,
) -> tuple[Any, int]:
    """Train one booster on arrays; returns (booster, best_iteration 0-based). Used by fit and by tuning.
    ``weight``: per training row (kimp.models.dataset.age_weights), None = equal."""
    rounds = int(params["num_boost_round"])
    stop = int(params["early_stopping_rounds"])
    if kind == "xgboost":
        import xgboost as xgb

        xp = _xgb_params(params, seed, threads)
        dtrain = xgb.QuantileDMatrix(
            x_train, label=y_train, weight=weight, missing=np.nan, max_bin=xp["max_bin"]
        )
        evals = []
        if x_valid is not None and len(x_valid):
            evals = [(xgb.DMatrix(x_valid, label=y_valid, missing=np.nan), "validation")]
        booster = xgb.train(
            xp,
            dtrain,
            num_boost_round=rounds,
            evals=evals,
            early_stopping_rounds=stop if evals else None,
            verbose_eval=False,
        )
        best = getattr(booster, "best_iteration", None)
        return booster, int(best) if best is not None and evals else rounds - 1
    if kind == "lightgbm":
        import lightgbm as lgb

        lp = _lgb_params(params, seed, threads)
        dtrain = lgb.Dataset(
            x_train, label=y_train, weight=weight, params={"max_bin": lp["max_bin"], "verbosity": -1}
        )
        valid_sets, callbacks = [], []
        if x_valid is not None and len(x_valid):
            valid_sets = [lgb.Dataset(x_valid, label=y_valid, reference=dtrain)]
            callbacks = [lgb.early_stopping(stop, verbose=False)]
        booster = lgb.train(lp, dtrain, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks)
        best = (
            booster.best_iteration
            if valid_sets and booster.best_iteration > 0
            else booster.current_iteration()
        )
        return booster, int(best) - 1
    raise ValueError(f"unknown boosting kind {kind!r}: expected one of {KINDS}")


def fit_boosting(
    kind: BoostingKind | str,
    frame: pl.DataFrame,
    config: WalkForwardConfig,
    params: dict[str, Any] | None = None,
    *,
    features: list[str] | None = None,
) -> BoostingModel:
    """Fit on ``split == 'train'`` rows, early-stop on ``split == 'validation'`` (frame from training_frame).

    ``params`` (e.g. the tuned ones) override DEFAULT_PARAMS key by key.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown boosting kind {kind!r}: expected one of {KINDS}")
    merged = {**DEFAULT_PARAMS, **(params or {})}
    train = frame.filter(pl.col("split") == "train")
    valid = frame.filter(pl.col("split") == "validation")
    cols = features if features is not None else feature_columns(train)
    if not cols:
        raise ValueError(f"{kind}: the training frame has no feature columns (have {frame.columns})")
    booster, best = train_arrays(
        kind,
        feature_matrix(train, cols),
        train["label"].to_numpy(),
        feature_matrix(valid, cols),
        valid["label"].to_numpy(),
        merged,
        seed=config.seed,
        threads=threads_for(config),
        weight=age_weights(train, config),
    )
    if kind == "xgboost":
        raw = booster.get_score(importance_type="total_gain")
        gains = {cols[int(k[1:])]: v for k, v in raw.items()}  # xgboost names numpy columns f0, f1, ...
    else:
        gains = dict(zip(cols, booster.feature_importance(importance_type="gain"), strict=True))
    return BoostingModel(
        name=kind,
        kind=kind,
        features=cols,
        booster=booster,
        params=merged,
        best_iteration=best,
        importance=_importance_frame(cols, gains),
    )


def fit_xgboost(
    frame: pl.DataFrame, config: WalkForwardConfig, *, features: list[str], params: dict[str, Any] | None
) -> BoostingModel:
    """The registry's fit for ``xgboost`` (kimp.models.registry)."""
    return fit_boosting("xgboost", frame, config, params, features=features)


def fit_lightgbm(
    frame: pl.DataFrame, config: WalkForwardConfig, *, features: list[str], params: dict[str, Any] | None
) -> BoostingModel:
    """The registry's fit for ``lightgbm`` (kimp.models.registry)."""
    return fit_boosting("lightgbm", frame, config, params, features=features)


def _space(trial: Any, kind: str) -> dict[str, Any]:
    """The parameters a trial tries, in DEFAULT_PARAMS' vocabulary."""
    params: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
        # XGBoost grows depth-wise (up to 2^depth leaves per class and round): capped at 6 to bound a trial.
        "max_depth": trial.suggest_int("max_depth", 3, 6 if kind == "xgboost" else 8),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample": trial.suggest_float("colsample", 0.2, 0.6),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        # Inside CV there is no early stopping: the number of rounds is searched and caps the daily fit.
        "num_boost_round": trial.suggest_int("num_boost_round", 50, 150, step=25),
    }
    if kind == "lightgbm":
        params["num_leaves"] = trial.suggest_int("num_leaves", 15, 63)
    return params


def xgboost_space(trial: Any) -> dict[str, Any]:
    return _space(trial, "xgboost")


def lightgbm_space(trial: Any) -> dict[str, Any]:
    return _space(trial, "lightgbm")


def importance_png(
    importance: pl.DataFrame, path: Path, *, top: int = 30, title: str = "feature importance (gain)"
) -> Path:
    """Horizontal bar chart of the ``top`` features by gain share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    head = importance.sort("gain", descending=True).head(top)
    fig, ax = plt.subplots(figsize=(7, 0.25 * max(len(head), 4) + 1))
    ax.barh(head["feature"].to_list()[::-1], head["share"].to_list()[::-1], color="#4477aa")
    ax.set_xlabel("share of total gain")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
