"""Out-of-sample metrics per model on the real hourly samples, through the one walk-forward (train_day /
predict_day, the functions the model assets call), in one process without Dagster's per-run overhead.

Usage: python scripts/real_walk_forward_loss.py FIRST_DAY N_DAYS WINDOW_DAYS [DATA_DIR]
(Bithumb BTC/ETH premium, 1-hour horizon, default parameters; figures in docs/models.md)."""

import sys
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from kimp.features import FeatureConfig, FeatureInputs, build_features, lookback_days
from kimp.market_data.source import build_source
from kimp.models.base import WalkForwardConfig
from kimp.models.evaluation import evaluate
from kimp.models.walk_forward import predict_day, train_day
from kimp.premium import compute_premium
from kimp.timeutil import day_bounds

first, n_days, window = date.fromisoformat(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
config = WalkForwardConfig(window_days=window, kr_venue="bithumb")
fc = FeatureConfig()
look = max(lookback_days(fc).values())
start = first - timedelta(days=window + 2 + look)
last = first + timedelta(days=n_days - 1)
data_dir = (
    sys.argv[4]
    if len(sys.argv) > 4
    else str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
)
src = build_source("files", data_dir=data_dir)
t0 = time.time()
days = [start + timedelta(days=i) for i in range((last - start).days + 1)]
fx_days = [start - timedelta(days=i) for i in range(7, 0, -1)] + days
fx = {d: src.fx(d) for d in fx_days}
cand = {v: {d: src.candles(v, d) for d in days} for v in ("bithumb", "binance", "upbit")}
prem = []
for d in days:
    fxw = pl.concat([fx[d - timedelta(days=k)] for k in range(7, -1, -1)], how="vertical_relaxed")
    prem.append(
        compute_premium(
            {"upbit": cand["upbit"][d], "bithumb": cand["bithumb"][d]}, cand["binance"][d], fxw, day=d
        )
    )
premium = pl.concat(prem, how="vertical_relaxed")
candles = pl.concat([f for v in cand.values() for f in v.values() if f.height], how="vertical_relaxed")
fxall = pl.concat(list(fx.values()), how="vertical_relaxed")
lo, _ = day_bounds(start)
_, hi = day_bounds(last)
features = build_features(
    FeatureInputs(premium=premium, candles=candles, fx=fxall), start=lo, end=hi, config=fc
).frame
print(
    f"data+features {time.time() - t0:.0f}s: premium {premium.height} rows, features {features.shape}",
    flush=True,
)
rows = []
for i in range(n_days):
    day = first + timedelta(days=i)
    t = time.time()
    past = features.filter(pl.col("ts") < day_bounds(day)[0])
    models = train_day(past, premium.filter(pl.col("ts") < day_bounds(day)[0]), day=day, config=config)
    preds = predict_day(
        models, features.filter(pl.col("ts") < day_bounds(day)[1]), premium, day=day, config=config
    )
    ev = evaluate(preds.drop_nulls("label")).with_columns(day=pl.lit(str(day)))
    temps = {n: round(f.temperature, 3) for n, f in models.fits.items()}
    print(day, f"{time.time() - t:.0f}s", "T", temps, flush=True)
    print(ev.select("model", "n", "accuracy", "macro_f1", "log_loss"), flush=True)
    rows.append(ev)
allev = pl.concat(rows, how="diagonal_relaxed")
summary = (
    allev.group_by("model")
    .agg(
        days=pl.len(),
        n=pl.col("n").sum(),
        accuracy=pl.col("accuracy").mean(),
        macro_f1=pl.col("macro_f1").mean(),
        log_loss=pl.col("log_loss").mean(),
        max_log_loss=pl.col("log_loss").max(),
    )
    .sort("log_loss")
)
with pl.Config(tbl_rows=20, float_precision=3):
    print(summary)
