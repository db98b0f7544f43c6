"""Direction-model benchmarks on 2 cores (run on demand; figures go to docs/benchmarks.md).

1. retrain: one daily retrain of XGBoost and LightGBM on a 30-day window of 1-minute features
   (2 coins x 30 days x 1440 bars ~ 86,000 rows x 520 features, synthetic), default (= given) params,
   early stopping on the validation split, as the daily assets run it (walk_forward.fit_member: fit,
   validation scores, calibration). Target: both in < 3 min.
2. predict: batch prediction of one day (2 x 1440 rows) by each model, and the whole prediction step
   (predictions_frame: both models, persistence, majority and the ensemble, long format, labels joined).
   Target: < 1 s.
3. optuna: a small-budget study (``--trials``, default 3) per boosting model with 5-fold purged CV,
   extrapolated to 20 trials. Target: a 20-trial study in < 30 min.

Usage: .venv/bin/python benchmarks/bench_models.py [--days 30] [--features 520] [--trials 3] [--skip-optuna]
Prints one JSON object; peak memory is this process's max RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kimp.models import registry
from kimp.models.base import WalkForwardConfig
from kimp.models.dataset import scoring_frame
from kimp.models.tuning import tune
from kimp.models.walk_forward import fit_day_ensemble, fit_member, predictions_frame, training_dataset
from kimp.testing import synthetic_market, wide_features


def _progress(label: str, value: object) -> None:
    """Each figure as soon as it exists (stderr), so a long run that is stopped still reports."""
    print(f"{label}: {json.dumps(value)}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--features", type=int, default=520)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--skip-optuna", action="store_true")
    args = parser.parse_args()

    config = WalkForwardConfig(window_days=args.days, models=("xgboost", "lightgbm"), n_trials=args.trials)
    start = date(2024, 1, 1)
    day = start + timedelta(days=args.days + 1)
    out: dict[str, object] = {"python": platform.python_version(), "cpus": os.cpu_count()}

    t = time.perf_counter()
    features, premium = synthetic_market(start, args.days + 2, n_features=40, n_null_features=8)
    features = wide_features(features, args.features)
    out["generate_s"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    frame = training_dataset(features, premium, day=day, config=config)
    out["training_frame_s"] = round(time.perf_counter() - t, 2)
    out["rows"] = frame.height
    out["split_rows"] = dict(frame.group_by("split").len().iter_rows())
    out["feature_columns"] = len([c for c in features.columns if c not in ("ts", "coin")])

    models = {}
    retrain = {}
    for kind in ("xgboost", "lightgbm"):
        t, cpu = time.perf_counter(), time.process_time()
        models[kind] = fit_member(registry.get(kind), frame, config).model
        retrain[kind] = {
            "seconds": round(time.perf_counter() - t, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1),  # all threads; wall >> cpu/2 = shared cores
            "best_round": models[kind].best_iteration + 1,  # type: ignore[attr-defined]
        }
        _progress(f"retrain {kind}", retrain[kind])
    out["retrain"] = retrain
    out["retrain_both_s"] = round(sum(v["seconds"] for v in retrain.values()), 1)

    today = scoring_frame(features, day=day)
    predict = {}
    for kind, model in models.items():
        model.predict_proba(today.head(10))  # warm
        t = time.perf_counter()
        model.predict_proba(today)
        predict[kind] = round(time.perf_counter() - t, 3)
    out["predict_rows"] = today.height
    out["predict_s"] = predict
    _progress("predict", predict)

    # The whole prediction step of a day: every model's rows in the PREDICTIONS schema, labels attached.
    all_models = {
        **models,
        "persistence": fit_member(registry.get("persistence"), frame, config).model,
        "majority": fit_member(registry.get("majority"), frame, config).model,
        "ensemble": fit_day_ensemble(dict(models), frame, config).model,
    }
    t = time.perf_counter()
    preds = predictions_frame(all_models, features, premium, day=day, config=config)
    out["predictions_frame_s"] = round(time.perf_counter() - t, 3)
    out["predictions_frame_rows"] = preds.height

    if not args.skip_optuna:
        optuna_out = {}
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/optuna.db"
            for kind in ("xgboost", "lightgbm"):
                t = time.perf_counter()
                tune(registry.get(kind), frame, config, url, f"bench-{kind}")
                seconds = time.perf_counter() - t
                optuna_out[kind] = {
                    "trials": args.trials,
                    "seconds": round(seconds, 1),
                    "extrapolated_20_trials_min": round(seconds / args.trials * 20 / 60, 1),
                }
                _progress(f"optuna {kind}", optuna_out[kind])
        out["optuna"] = optuna_out
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
