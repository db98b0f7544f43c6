"""The regression target in research: the premium's change over the horizon in basis points.

The same walk-forward as the direction study (kimp.research.study): for every ``retrain_every_days``-th
predicted day D, the training frame of D (kimp.models.walk_forward.training_dataset: labels known before D
minus the embargo, split train/validation/test with purging) fits every registered ``regression`` model
(kimp.models.registry, e.g. ``lightgbm_change``); they predict D and the following days up to the next
training day. Two baselines need no fitting: ``persistence`` (the change over the horizon that ended at the
bar's close repeats: ``last_change``, known then) and ``zero`` (no change).

Scores (:func:`score_change`), over the rows every model predicted and whose change is known: RMSE and
MAE in bp, and the directional hit rate (sign of the prediction against the sign of the change; a zero
prediction counts one half, so the ``zero`` baseline scores exactly 0.5), with block-bootstrap intervals
over days (kimp.research.bootstrap.day_weights, the same seeded blocks as the direction scores) and paired
differences to persistence and to zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

import numpy as np
import polars as pl

from kimp.models import registry
from kimp.models.base import WalkForwardConfig
from kimp.models.dataset import DatasetError, feature_columns, scoring_frame
from kimp.models.labels import LAST_CHANGE
from kimp.models.regression import BP
from kimp.models.walk_forward import labels_with_last_move, training_dataset
from kimp.research.bootstrap import BootstrapConfig, day_weights
from kimp.research.data import PeriodInputs
from kimp.research.periods import Period
from kimp.timeutil import day_bounds

log = logging.getLogger(__name__)

BASELINES = ("persistence", "zero")


def run_change(
    inputs: PeriodInputs,
    period: Period,
    config: WalkForwardConfig,
    *,
    days: list[date],
    retrain_every_days: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """(predictions: ts, coin, day, model, pred_bp, actual_bp, trained_on; skipped training days)."""
    features, premium = inputs.features, inputs.premium
    labels = labels_with_last_move(config, premium=premium)
    have = set(premium["ts"].dt.date().unique().to_list())
    specs = registry.specs(kind="regression")
    out: list[pl.DataFrame] = []
    skipped: list[str] = []
    for i in range(0, len(days), retrain_every_days):
        block = [d for d in days[i : i + retrain_every_days] if d in have]
        if not block:
            continue
        trained_on = block[0]
        try:
            frame = training_dataset(features, premium, day=trained_on, config=config)
            train = frame.filter(pl.col("split") == "train")
            models = {
                s.name: s.fit_model(frame, config, features=s.features.resolve(feature_columns(train), {})[0])
                for s in specs
            }
        except (DatasetError, ValueError) as exc:
            skipped.append(f"{trained_on}: {exc}")
            continue
        for day in block:
            rows = scoring_frame(features, day=day).join(
                labels.select("ts", "coin", "change", LAST_CHANGE), on=["ts", "coin"], how="left"
            )
            lo, hi = day_bounds(day)
            rows = rows.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
            if rows.height == 0:
                continue
            actual = rows["change"].to_numpy() * BP
            preds = {
                **{n: m.predict_change(rows) for n, m in models.items()},  # type: ignore[attr-defined]
                "persistence": rows[LAST_CHANGE].to_numpy() * BP,
                "zero": np.zeros(rows.height),
            }
            for name, p in preds.items():
                out.append(
                    pl.DataFrame(
                        {
                            "ts": rows["ts"],
                            "coin": rows["coin"],
                            "model": [name] * rows.height,
                            "pred_bp": np.asarray(p, dtype=np.float64),
                            "actual_bp": actual.astype(np.float64),
                        }
                    ).with_columns(day=pl.lit(day), trained_on=pl.lit(trained_on))
                )
        if progress:
            progress(f"{period.name} change {config.horizon_minutes // 60}h: trained on {trained_on}")
    frame = pl.concat(out, how="vertical_relaxed") if out else pl.DataFrame()
    return frame, skipped


def _common(predictions: pl.DataFrame) -> pl.DataFrame:
    ok = predictions.filter(
        pl.col("actual_bp").is_not_null()
        & pl.col("actual_bp").is_not_nan()
        & pl.col("pred_bp").is_not_null()
        & pl.col("pred_bp").is_not_nan()
    )
    n_models = ok["model"].n_unique()
    full = ok.group_by("ts", "coin").agg(n=pl.len()).filter(pl.col("n") == n_models).select("ts", "coin")
    return ok.join(full, on=["ts", "coin"], how="semi")


def score_change(predictions: pl.DataFrame, *, config: BootstrapConfig | None = None) -> pl.DataFrame:
    """One row per model: rows, days, RMSE and MAE (bp), hit rate, their intervals and the paired
    differences to ``persistence`` and ``zero`` (module docstring)."""
    config = config or BootstrapConfig()
    rows = _common(predictions)
    days = sorted(rows["day"].unique().to_list()) if rows.height else []
    if not days:
        return pl.DataFrame()
    index = {d: i for i, d in enumerate(days)}
    w = day_weights(len(days), config)
    ones = np.ones((1, len(days)))
    lo_q, hi_q = (1 - config.level) / 2, 1 - (1 - config.level) / 2
    samples: dict[str, dict[str, np.ndarray]] = {}
    point: dict[str, dict[str, float]] = {}
    for (name,), part in rows.group_by(["model"], maintain_order=True):
        di = np.array([index[d] for d in part["day"].to_list()], dtype=np.int64)
        p, a = part["pred_bp"].to_numpy(), part["actual_bp"].to_numpy()
        err = p - a
        hit = np.where(p == 0, 0.5, (np.sign(p) == np.sign(a)).astype(np.float64))
        directional = a != 0
        sums = {
            "sse": np.bincount(di, err**2, len(days)),
            "sae": np.bincount(di, np.abs(err), len(days)),
            "n": np.bincount(di, minlength=len(days)).astype(np.float64),
            "hits": np.bincount(di, hit * directional, len(days)),
            "n_dir": np.bincount(di, directional.astype(np.float64), len(days)),
        }

        def metrics(weights: np.ndarray, s: dict[str, np.ndarray] = sums) -> dict[str, np.ndarray]:
            n = np.maximum(weights @ s["n"], 1.0)
            return {
                "rmse_bp": np.sqrt((weights @ s["sse"]) / n),
                "mae_bp": (weights @ s["sae"]) / n,
                "hit_rate": (weights @ s["hits"]) / np.maximum(weights @ s["n_dir"], 1.0),
            }

        samples[str(name)] = metrics(w)
        point[str(name)] = {k: float(v[0]) for k, v in metrics(ones).items()} | {
            "rows": float(sums["n"].sum())
        }
    table = []
    for name, s in samples.items():
        row: dict[str, object] = {"model": name, "rows": int(point[name]["rows"]), "days": len(days)}
        for metric in ("rmse_bp", "mae_bp", "hit_rate"):
            row[metric] = point[name][metric]
            row[f"{metric}_lo"] = float(np.quantile(s[metric], lo_q))
            row[f"{metric}_hi"] = float(np.quantile(s[metric], hi_q))
            for base in BASELINES:
                if base in samples:
                    d = s[metric] - samples[base][metric]
                    row[f"{metric}_vs_{base}"] = point[name][metric] - point[base][metric]
                    row[f"{metric}_vs_{base}_lo"] = float(np.quantile(d, lo_q))
                    row[f"{metric}_vs_{base}_hi"] = float(np.quantile(d, hi_q))
        table.append(row)
    return pl.DataFrame(table).sort("model")
