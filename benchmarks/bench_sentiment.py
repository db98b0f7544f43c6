"""Sentiment model speed: fine-tune time and memory, load time, batch throughput on one core, single-headline
latency, peak memory of scoring.

    .venv/bin/python benchmarks/bench_sentiment.py [MODEL_DIR]           # scoring figures (about 1 minute)
    .venv/bin/python benchmarks/bench_sentiment.py --train [--threads N]  # fine-tune, then the scoring figures

``--train`` runs ``kimp sentiment train --no-register --threads N`` (the defaults: the 9,543 training tweets,
3 epochs at most, early stopping) in a fresh KIMP_HOME under /tmp, offline (HF_HUB_OFFLINE=1), and reports
its wall time, its CPU seconds and the largest max RSS of the command and its children; the fine-tune loop's
own wall and CPU seconds come from the model.json it writes. Then the scoring figures of the model it wrote.

Scoring (MODEL_DIR defaults to the newest folder under $KIMP_HOME/models/sentiment): each measurement runs in
a fresh process pinned to one thread (OMP_NUM_THREADS=1, ONNX Runtime intra-op threads 1): load = import +
loading through the model registry; batch = all 4,766 cryptonews headlines scored in batches of 64 (best of
3); latency = 500 single headlines one at a time (p50 / p99); peak memory = the process's max RSS after all
of it. Wall-clock figures depend on what else runs; the CPU-time figures (the process's own CPU seconds) are
what one idle core would give, and both are printed with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEWS = REPO.parent / "shared" / "data" / "real" / "cryptonews_2021_2022" / "cryptonews.csv.gz"

CHILD = r"""
import json, resource, sys, time
t0, c0 = time.perf_counter(), time.process_time()
from kimp.sentiment.store import load_folder
model = load_folder(sys.argv[1], threads=1)
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


def newest_model(home: Path | None = None) -> Path:
    home = home or Path(os.environ.get("KIMP_HOME") or REPO / ".kimp")
    folders = sorted((home / "models" / "sentiment").glob("2*"))
    if not folders:
        sys.exit(
            f"no model under {home / 'models' / 'sentiment'}: run `kimp sentiment train` or pass MODEL_DIR"
        )
    return folders[-1]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def train(threads: int) -> tuple[Path, dict[str, object]]:
    """`kimp sentiment train --no-register` in a fresh KIMP_HOME: wall, CPU and max RSS of the command."""
    home = Path(tempfile.mkdtemp(prefix="kimp-bench-sentiment-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIMP_")}
    env.update(KIMP_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))  # fmt: skip
    kimp = str(Path(sys.executable).parent / "kimp")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before, t0 = uptime(), time.perf_counter()
    done = subprocess.run([kimp, "sentiment", "train", "--no-register", "--threads", str(threads)], env=env,
                          cwd=REPO, capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"kimp sentiment train failed:\n{done.stderr[-3000:]}")
    model_dir = newest_model(home)
    meta = json.loads((model_dir / "model.json").read_text())
    ft = meta["finetune"]
    figures = {
        "command": f"kimp sentiment train --no-register --threads {threads}",
        "threads": threads,
        "wall_s": round(wall, 1),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "max_rss_mb": round(after.ru_maxrss / 1024),  # the largest of the command and its children
        "finetune_loop_wall_s": ft.get("seconds"),
        "finetune_loop_cpu_s": ft.get("cpu_seconds"),
        "examples_seen": ft.get("examples_seen"),
        "epochs_seen": round(ft.get("examples_seen", 0) / meta["data"]["train"]["rows"], 2),
        "stopped_early": ft.get("stopped_early"),
        "validation_macro_f1": meta["validation"]["finetuned"]["macro_f1"],
        "best_lexicon_macro_f1": max(meta["validation"][n]["macro_f1"] for n in ("lm", "vader", "wordlist")),
        "runtime": meta["runtime"],
        "load_before": load_before,
        "load_after": uptime(),
        "model_dir": str(model_dir),
    }
    print(done.stdout[-1500:], file=sys.stderr)
    return model_dir, figures


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("model_dir", nargs="?", type=Path, help="a saved model folder (default: the newest)")
    args.add_argument("--train", action="store_true", help="fine-tune first (kimp sentiment train)")
    args.add_argument("--threads", type=int, default=1, help="threads for the fine-tune (scoring: 1)")
    opts = args.parse_args()
    training = None
    if opts.train:
        model_dir, training = train(opts.threads)
    else:
        model_dir = opts.model_dir or newest_model()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    load = uptime()
    out = subprocess.run([sys.executable, "-c", CHILD, str(model_dir), str(NEWS)], env=env, capture_output=True,
                         text=True, check=True, cwd=REPO)  # fmt: skip
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    meta = json.loads((model_dir / "model.json").read_text())
    figures["finetune"] = {
        k: meta["finetune"].get(k) for k in ("seconds", "cpu_seconds", "examples_seen", "steps")
    }
    figures["load_before"] = load
    figures["load_after"] = uptime()
    if training is not None:
        figures["train"] = training
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
