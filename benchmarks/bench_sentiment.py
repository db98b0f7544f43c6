"""Sentiment model speed: load time, batch throughput on one core, single-headline latency, peak memory.

    .venv/bin/python benchmarks/bench_sentiment.py [MODEL_DIR]

MODEL_DIR defaults to the newest folder under $KIMP_HOME/models/sentiment (written by `kimp sentiment
train`). Each measurement runs in a fresh process pinned to one thread (OMP_NUM_THREADS=1, ONNX Runtime
intra-op threads 1): load = import + SentimentModel.load; batch = all 4,766 cryptonews headlines scored
in batches of 64 (best of 3); latency = 500 single headlines one at a time (p50 / p99); peak memory = the
process's max RSS after all of it. Wall-clock figures depend on what else runs; the CPU-time figures (the
process's own CPU seconds) are what one idle core would give, and both are printed. The fine-tune figures come from `kimp sentiment train` (its model.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEWS = REPO.parent / "shared" / "data" / "real" / "cryptonews_2021_2022" / "cryptonews.csv.gz"

CHILD = r"""
import json, resource, sys, time
t0, c0 = time.perf_counter(), time.process_time()
from kimp.sentiment.runtime import SentimentModel
model = SentimentModel.load(sys.argv[1], threads=1)
load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
import numpy as np, polars as pl
texts = pl.read_csv(sys.argv[2])["title"].to_list()
model.predict_proba(texts[:64])  # warm-up
runs = []
for _ in range(3):
    w, c = time.perf_counter(), time.process_time()
    model.predict_proba(texts)
    runs.append((time.perf_counter() - w, time.process_time() - c))
best, best_cpu = min(r[0] for r in runs), min(r[1] for r in runs)
lat, lat_cpu = [], []
for t in texts[:500]:
    s, c = time.perf_counter(), time.process_time(); model.predict_proba([t])
    lat.append(time.perf_counter() - s); lat_cpu.append(time.process_time() - c)
lat, lat_cpu = np.array(lat) * 1000, np.array(lat_cpu) * 1000
print(json.dumps({"runtime": model.runtime, "load_s": load_s, "load_cpu_s": load_cpu, "headlines": len(texts),
    "batch_headlines_per_s": len(texts) / best, "batch_headlines_per_cpu_s": len(texts) / best_cpu,
    "single_p50_ms": float(np.percentile(lat, 50)), "single_p99_ms": float(np.percentile(lat, 99)),
    "single_cpu_p50_ms": float(np.percentile(lat_cpu, 50)), "single_cpu_p99_ms": float(np.percentile(lat_cpu, 99)), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def newest_model() -> Path:
    home = Path(os.environ.get("KIMP_HOME") or REPO / ".kimp")
    folders = sorted((home / "models" / "sentiment").glob("2*"))
    if not folders:
        sys.exit(
            f"no model under {home / 'models' / 'sentiment'}: run `kimp sentiment train` or pass MODEL_DIR"
        )
    return folders[-1]


def main() -> None:
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else newest_model()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    out = subprocess.run([sys.executable, "-c", CHILD, str(model_dir), str(NEWS)], env=env, capture_output=True,
                         text=True, check=True, cwd=REPO)  # fmt: skip
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    meta = json.loads((model_dir / "model.json").read_text())
    figures["finetune"] = {
        k: meta["finetune"].get(k) for k in ("seconds", "cpu_seconds", "examples_seen", "steps")
    }
    figures["load_before"] = load
    figures["load_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
