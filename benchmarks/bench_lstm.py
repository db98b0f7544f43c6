"""LSTM direction model benchmark: seconds per training epoch on a 30-day window of 1-minute features.

Target (issue 4): one CPU epoch of the DEFAULT model (``lstm_size="cpu"``) on about 86,000 rows
(2 coins x 43,200 one-minute bars, 50 features) in under 2 minutes, with torch limited to 2 threads.

The features are synthetic (AR(1) series, a few of which drive the label through the last bars) because
the point is the cost of the network, not what it learns; the data size and shape match the real case.
By default 98% of the rows are ``train`` (the strict reading: an epoch over ~all 86k windows); use
``--train-fraction 0.7`` for the walk-forward's 70/15/15 split. Also reported: predicting one day
(2 x 1,440 bars plus the window's history) and peak memory.

    .venv/bin/python benchmarks/bench_lstm.py                 # default cpu model, 1 epoch
    .venv/bin/python benchmarks/bench_lstm.py --size prd      # the PRD's full size (slow on CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from datetime import UTC, datetime
from importlib.metadata import version

import numpy as np
import polars as pl

from kimp.models.base import WalkForwardConfig
from kimp.models.sequence import fit_lstm, sizes_for  # first torch import: sets OMP_WAIT_POLICY before it


def synthetic_features(
    days: int, n_features: int, coins: tuple[str, ...], train_fraction: float, seed: int
) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    bars = days * 1440
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ts = pl.datetime_range(start, start + pl.duration(minutes=bars - 1), "1m", eager=True, time_zone="UTC")
    validation_end = train_fraction + (1 - train_fraction) / 2
    split = np.where(
        np.arange(bars) < train_fraction * bars,
        "train",
        np.where(np.arange(bars) < validation_end * bars, "validation", "test"),
    )
    parts = []
    for coin in coins:
        noise = rng.normal(size=(bars, n_features)).astype(np.float32)
        x = np.empty_like(noise)
        x[0] = noise[0]
        for i in range(1, bars):  # AR(1): features with memory, like rolling market features
            x[i] = 0.9 * x[i - 1] + noise[i]
        drive = x[:, :3].sum(axis=1) - np.roll(x[:, :3].sum(axis=1), 30)
        label = np.where(drive > 3, 2, np.where(drive < -3, 0, 1)).astype(np.int8)
        frame = pl.DataFrame({f"feat_{j:02d}": x[:, j] for j in range(n_features)})
        parts.append(
            frame.with_columns(
                ts=ts.cast(pl.Datetime("us", "UTC")),
                coin=pl.lit(coin),
                label=pl.Series(label, dtype=pl.Int8),
                split=pl.Series(split),
            )
        )
    return pl.concat(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("cpu", "prd"), default="cpu")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-fraction", type=float, default=0.98)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 = the model's default, or 2)"
    )
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    frame = synthetic_features(args.days, args.features, ("BTC", "ETH"), args.train_fraction, seed=7)
    features = [c for c in frame.columns if c.startswith("feat_")]
    config = WalkForwardConfig(lstm_size=args.size, model_params={"lstm": {"threads": args.threads}})
    sizes = sizes_for(config, max_epochs=args.epochs)

    started = time.perf_counter()
    model = fit_lstm(frame, config, features=features, max_epochs=args.epochs, progress=args.progress)
    fit_s = time.perf_counter() - started

    last_day = frame.filter(
        pl.col("ts") >= frame.get_column("ts").max() - pl.duration(minutes=1440 + sizes.steps - 2)
    )
    started = time.perf_counter()
    proba = model.predict_proba(last_day)
    predict_s = time.perf_counter() - started

    h = model.history
    result = {
        "size": args.size,
        "sizes": {k: getattr(sizes, k) for k in ("steps", "lstm1", "lstm2", "heads", "dense")},
        "rows": frame.height,
        "features": len(features),
        "train_windows": h.n_train,
        "validation_windows": h.n_validation,
        "batch_size": h.batch_size,
        "epoch_seconds": [round(s, 2) for s in h.epoch_seconds],
        "fit_seconds_incl_prep": round(fit_s, 2),
        "predict_day_rows": last_day.height,
        "predict_day_scored": int((~np.isnan(proba).any(axis=1)).sum()),
        "predict_day_seconds": round(predict_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "device": h.device,
        "torch_threads": args.threads,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "torch": version("torch"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    print(json.dumps(result, indent=1))
    worst = max(h.epoch_seconds)
    verdict = "PASS" if worst < 120 or args.size != "cpu" else "FAIL"
    print(
        f"{verdict}: one epoch of the {args.size} model on {h.n_train:,} training windows = {worst:.1f} s (target < 120 s)"
    )


if __name__ == "__main__":
    main()
