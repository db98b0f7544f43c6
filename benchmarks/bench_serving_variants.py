"""Which parts of the signal service cost what (docs/decisions.md 50): server CPU time per request of the two
hot routes under wrk, for variants of the service, and the POST's steps in process.

Variants (each a uvicorn process, one worker, on a Redis online store holding one signal; the champion is
bench_serving's LightGBM over the catalog's 672 features):
- ``fast``: what ``kimp serve`` runs (plain-ASGI hot routes, signal cache 50 ms, uvloop + httptools);
- ``fast-nocache``: the same, reading Redis on every GET (KIMP_SIGNAL_CACHE_MS=0);
- ``fastapi``: the FastAPI app alone (its routes call the same service; no latency histogram);
- ``plain``: ``fast`` under asyncio + h11.

    nice -n 10 .venv/bin/python benchmarks/bench_serving_variants.py [--seconds 8] [variants...]

CPU per request is read from the server process's counters, so it says what an idle core would do even on
a loaded machine; req/s and p99 are printed but inflated by whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serving as bench  # the champion, wrk and /proc helpers

VARIANTS = ("fast", "fast-nocache", "fastapi", "plain")


def serve(variant: str, port: int, home: Path, prefix: str) -> None:
    import uvicorn

    from kimp.features.types import FeatureConfig
    from kimp.serving.api import create_app, framework_app
    from kimp.serving.champion import ChampionHolder
    from kimp.serving.service import SignalService
    from kimp.streaming.config import StreamSettings
    from kimp.streaming.online import RedisStore

    holder = ChampionHolder(f"sqlite:///{home / 'mlflow.db'}", "lightgbm")
    holder.poll()
    stream = StreamSettings(model="lightgbm", signal_cache_ms=0.0 if variant == "fast-nocache" else 50.0)
    service = SignalService(RedisStore(bench.REDIS, prefix=prefix), holder, stream=stream,
                            features=FeatureConfig(), horizon=60)  # fmt: skip
    app = framework_app(service) if variant == "fastapi" else create_app(service)
    loop, http = ("asyncio", "h11") if variant == "plain" else ("uvloop", "httptools")
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, loop=loop, http=http)


def in_process(home: Path, names: tuple[str, ...]) -> None:
    """The POST's steps, CPU time per call in this thread."""
    import orjson

    from kimp.features.types import FeatureConfig
    from kimp.serving.champion import ChampionHolder
    from kimp.serving.service import columns, feature_row, model_frame

    holder = ChampionHolder(f"sqlite:///{home / 'mlflow.db'}", "lightgbm")
    holder.poll()
    loaded = holder.get()
    rng = np.random.default_rng(1)
    features = {n: float(v) for n, v in zip(names, rng.normal(size=len(names)), strict=True)}
    raw = orjson.dumps({"coin": "BTC", "features": features})
    cols = columns(loaded, FeatureConfig(), "upbit")
    row = feature_row(cols, features)
    booster, rounds = loaded.model.booster, loaded.model.best_iteration + 1
    now = datetime.now(UTC)

    def us(f, n: int = 300) -> float:  # type: ignore[no-untyped-def]
        f()
        t0 = time.thread_time()
        for _ in range(n):
            f()
        return (time.thread_time() - t0) / n * 1e6

    print(f"orjson.loads of the body ({len(raw)} B): {us(lambda: orjson.loads(raw)):.0f} us")
    print(f"features -> model row (feature_row): {us(lambda: feature_row(cols, features)):.0f} us")
    frame_us = us(lambda: loaded.predict(model_frame(loaded, [("BTC", [now], row[None, :])])), 50)
    print(f"score via a frame (model_frame + predict_proba): {frame_us:.0f} us; via the row "
          f"(predict_proba_rows): {us(lambda: loaded.predict_rows(row[None, :])):.0f} us")  # fmt: skip
    one = us(lambda: booster.predict(row[None, :], num_iteration=rounds, num_threads=1))
    default = us(lambda: booster.predict(row[None, :], num_iteration=rounds))
    print(
        f"LightGBM Booster.predict of one row: {one:.0f} us with num_threads=1, {default:.0f} us by default"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()
    if not bench._redis_up():
        sys.exit(f"a Redis server is needed at {bench.REDIS}")

    import httpx

    from kimp.features.types import FeatureConfig
    from kimp.serving.service import feature_names
    from kimp.streaming.online import RedisStore, Signal

    home = Path(tempfile.mkdtemp(prefix="kimp-bench-variants-"))
    prefix = f"kimpvar_{uuid.uuid4().hex[:8]}"
    store = RedisStore(bench.REDIS, prefix=prefix)
    try:
        feature_set, names = feature_names(FeatureConfig(), "upbit")
        bench.register_champion(f"sqlite:///{home / 'mlflow.db'}", home, names)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        store.put_signal(Signal(ts=now, coin="BTC", kr_venue="upbit", horizon=60, model="lightgbm",
                                model_version="1", p_down=0.2, p_flat=0.5, p_up=0.3, target_position=0.25,
                                feature_ts=now, feature_set=feature_set, written_at=now))  # fmt: skip
        rng = np.random.default_rng(1)
        values = {n: float(v) for n, v in zip(names, rng.normal(size=len(names)), strict=True)}
        body = json.dumps({"coin": "BTC", "kr_venue": "upbit", "features": values})
        lua = home / "predict.lua"
        lua.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                       f"wrk.body = {json.dumps(body)}\n")  # fmt: skip
        in_process(home, names)
        for variant in args.variants:
            port = bench._port()
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", variant, str(port), str(home), prefix],
                env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                base = f"http://127.0.0.1:{port}"
                for _ in range(600):
                    try:
                        if httpx.get(f"{base}/v1/signal/BTC", timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.2)
                routes = ((f"{base}/v1/signal/BTC?kr_venue=upbit", None), (f"{base}/v1/predict", lua))
                for url, script in routes:  # warm-up
                    bench._wrk(url, 2, 16, script)
                out = []
                for url, script in routes:
                    c0 = bench._cpu_s(server.pid)
                    rps, p99, errors = bench._wrk(url, args.seconds, 16, script)
                    cpu = (bench._cpu_s(server.pid) - c0) / bench._wrk.requests * 1000  # type: ignore[attr-defined]
                    out.append(f"{'GET' if script is None else 'POST'} {cpu:.3f} ms CPU/request "
                               f"({rps:.0f} req/s, p99 {p99:.1f} ms, errors {errors})")  # fmt: skip
                print(f"{variant}: {'; '.join(out)}; load {os.getloadavg()[0]:.1f}", flush=True)
            finally:
                server.terminate()
                server.wait(15)
    finally:
        store.clear()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
