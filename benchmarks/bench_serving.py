"""The signal service's speed (issue 14; figures in docs/benchmarks.md).

1. Registers a champion in a temporary MLflow sqlite store: LightGBM (kimp's own fit, early-stopped) over
   the catalog's full feature width, trained on seeded synthetic rows (this measures serving cost, not
   skill); times its load through kimp.serving.champion (what `kimp serve` does).
2. Replays simulated 1-minute bars (books every 5 s: tick refreshes between closes) through the live loop
   into the online store (Redis when one answers on 127.0.0.1:6379, else SQLite): bars per second and the
   bar close -> signal readable latency (features of both coins, one prediction call, store writes).
3. Starts `kimp serve` (a separate process, uvicorn, one worker) on that store and loads it with wrk from
   another process: GET /v1/signal/BTC and POST /v1/predict with the full stored feature vector, after a
   warm-up; then reads the service's RSS.

    nice -n 10 env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_serving.py \
        [--seconds 60] [--bars 40] [--connections 16]

With the issue's 60 s runs it takes about 3-4 minutes on an idle machine (it prints its own total).
The POST's probabilities are checked against the model's batch ``predict_proba`` on the same vector.

Last line: get_rps=<n> get_p99_ms=<x> predict_rps=<n> predict_p99_ms=<x> bar_to_signal_p99_ms=<x>
stream_bars_per_s=<n> errors=<n>
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
REDIS = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS, socket_timeout=1).ping())
    except Exception:
        return False


def register_champion(uri: str, root: Path, names: tuple[str, ...]) -> str:
    import mlflow

    from kimp.models.base import WalkForwardConfig
    from kimp.models.boosting import fit_lightgbm
    from kimp.models.registry import save_model
    from kimp.models.tracking import ensure_experiment, log_trained_model

    rng = np.random.default_rng(7)
    n = 4000
    x = rng.normal(size=(n, len(names))).astype(np.float32)
    signal = x[:, 0] + 0.5 * x[:, 1] - 0.5 * x[:, 2] + rng.normal(scale=0.8, size=n)
    label = np.digitize(signal, [-0.6, 0.6])
    t0 = datetime(2024, 2, 1, tzinfo=UTC)
    frame = pl.concat(
        [
            pl.DataFrame({"ts": [t0 + timedelta(minutes=i) for i in range(n)], "coin": ["BTC"] * n}),
            pl.DataFrame(x, schema=list(names)),
            pl.DataFrame(
                {"label": label, "split": ["train"] * int(n * 0.8) + ["validation"] * (n - int(n * 0.8))}
            ),
        ],
        how="horizontal",
    )
    model = fit_lightgbm(frame, WalkForwardConfig(), features=list(names), params=None)
    path = save_model("lightgbm", model, root / "lightgbm")
    ensure_experiment(uri, "bench-serving", f"file://{root / 'artifacts'}")
    mlflow.set_experiment("bench-serving")
    _, version = log_trained_model(mlflow, name="lightgbm", day=date(2024, 3, 3), model_dir=path)
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).set_registered_model_alias("kimp-lightgbm", "champion", str(version))
    return str(version)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> tuple[float, float, int]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]  # type: ignore[union-attr]
    m50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    _wrk.p50 = float(m50.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m50.group(2)]  # type: ignore[attr-defined,union-attr]
    _wrk.requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[attr-defined,union-attr]
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return rps, p99, errors


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60, help="wrk duration per route (after a warm-up)")
    parser.add_argument("--bars", type=int, default=40, help="bars replayed through the live loop")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (apt-get install -y wrk)")

    from kimp.features.types import FeatureConfig
    from kimp.serving.champion import ChampionHolder
    from kimp.serving.live import StreamOptions
    from kimp.serving.run import run_stream
    from kimp.serving.service import feature_names
    from kimp.settings import Settings
    from kimp.streaming.config import StreamSettings

    started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix="kimp-bench-serving-"))
    uri = f"sqlite:///{home / 'mlflow.db'}"
    redis_url = REDIS if _redis_up() else None
    prefix = f"kimpbench_{uuid.uuid4().hex[:8]}"
    feature_set, names = feature_names(FeatureConfig(), "upbit")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; online store: "
          f"{'redis' if redis_url else 'sqlite'}; {len(names)} features", flush=True)  # fmt: skip

    version = register_champion(uri, home, names)
    loads = []
    for _ in range(3):
        holder = ChampionHolder(uri, "lightgbm")
        holder.poll()
        loads.append(holder.get().load_s)
    print(f"model load (kimp-lightgbm v{version}, download + load): {', '.join(f'{x:.2f}' for x in loads)} s")

    streaming = StreamSettings(redis_url=redis_url, prefix=prefix, model="lightgbm")
    settings = Settings(home=home, mlflow_uri=uri, streaming=streaming)
    options = StreamOptions(source="simulated", start=date(2024, 3, 4), end=date(2024, 3, 4), warmup_days=0,
                            max_bars=args.bars)  # fmt: skip
    t0 = time.perf_counter()
    loop = run_stream(settings, options)
    wall = time.perf_counter() - t0 - (loop.stats.warm_up_s or 0)
    lat = np.array(loop.stats.latencies_ms[5:])  # after the first bars (numba, first predict)
    cpu = np.array(loop.stats.cpu_ms[5:])
    engine_cpu = np.array(loop.stats.engine_cpu_ms[5:])
    bars_per_s = loop.stats.bars / wall
    print(f"stream: {loop.stats.bars} bars in {wall:.1f} s ({bars_per_s:.1f} bars/s, book snapshots every 5 s "
          f"refreshing tick features in between); bar close -> signal p50 {np.percentile(lat, 50):.1f} ms, "
          f"p99 {np.percentile(lat, 99):.1f} ms, max {lat.max():.1f} ms; its CPU time p50 "
          f"{np.percentile(cpu, 50):.1f} ms, p99 {np.percentile(cpu, 99):.1f} ms (the feature engine's bar close "
          f"{np.percentile(engine_cpu, 50):.1f} ms p50)", flush=True)  # fmt: skip

    from kimp.serving.run import open_store

    store = open_store(settings)
    vector = store.get_vector("BTC", "upbit", feature_set)
    assert vector is not None
    body = json.dumps({"coin": "BTC", "kr_venue": "upbit", "features": vector.as_dict()})
    lua = home / "predict.lua"
    lua.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                   f"wrk.body = {json.dumps(body)}\n")  # fmt: skip

    port = _port()
    env = {**os.environ, "KIMP_HOME": str(home), "KIMP_MLFLOW_URI": uri, "KIMP_SERVE_MODEL": "lightgbm",
           "KIMP_STREAM_PREFIX": prefix, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}  # fmt: skip
    if redis_url:
        env["KIMP_REDIS_URL"] = redis_url
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "kimp"), "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{base}/v1/signal/BTC", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        r = httpx.post(f"{base}/v1/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        # the served probabilities are the batch path's: predict_proba on a features-table frame
        row = {n: [v] for n, v in vector.as_dict().items()}
        frame = pl.DataFrame({"ts": [vector.ts], "coin": ["BTC"], **row},
                             schema_overrides={n: pl.Float32 for n in row})  # fmt: skip
        batch = holder.get().model.predict_proba(frame)[0]
        served = [r.json()[k] for k in ("p_down", "p_flat", "p_up")]
        np.testing.assert_allclose(served, batch, rtol=1e-9)
        _wrk(f"{base}/v1/signal/BTC?kr_venue=upbit", 5, args.connections)  # warm-up
        _wrk(f"{base}/v1/predict", 5, args.connections, lua)
        c0 = _cpu_s(server.pid)
        get = _wrk(f"{base}/v1/signal/BTC?kr_venue=upbit", args.seconds, args.connections)
        get_cpu = (_cpu_s(server.pid) - c0) / _wrk.requests * 1000  # type: ignore[attr-defined]
        get_p50 = _wrk.p50  # type: ignore[attr-defined]
        print(f"GET /v1/signal: {get[0]:.0f} req/s, p50 {get_p50:.2f} ms, p99 {get[1]:.2f} ms, errors {get[2]}; service CPU "
              f"{get_cpu:.2f} ms a request (one idle core: ~{1000 / get_cpu:.0f} req/s)", flush=True)  # fmt: skip
        c0 = _cpu_s(server.pid)
        predict = _wrk(f"{base}/v1/predict", args.seconds, args.connections, lua)
        pred_cpu = (_cpu_s(server.pid) - c0) / _wrk.requests * 1000  # type: ignore[attr-defined]
        pred_p50 = _wrk.p50  # type: ignore[attr-defined]
        print(f"POST /v1/predict: {predict[0]:.0f} req/s, p50 {pred_p50:.2f} ms, p99 {predict[1]:.2f} ms, errors {predict[2]}; service "
              f"CPU {pred_cpu:.2f} ms a request (one idle core: ~{1000 / pred_cpu:.0f} req/s)", flush=True)  # fmt: skip
        rss = _rss_mb(server.pid)
        print(
            f"service RSS after load: {rss:.0f} MB; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
    finally:
        server.terminate()
        server.wait(15)
        if redis_url:
            from kimp.streaming.online import RedisStore

            RedisStore(redis_url, prefix=prefix).clear()
        shutil.rmtree(home, ignore_errors=True)
    print(f"benchmark took {time.perf_counter() - started:.0f} s")
    print(
        f"get_rps={get[0]:.0f} get_p99_ms={get[1]:.2f} predict_rps={predict[0]:.0f} "
        f"predict_p99_ms={predict[1]:.2f} bar_to_signal_p99_ms={np.percentile(lat, 99):.1f} "
        f"stream_bars_per_s={bars_per_s:.1f} errors={get[2] + predict[2] + loop.stats.errors}"
    )


if __name__ == "__main__":
    main()
