"""FastAPI vs Litestar for the signal API's two shapes (docs/decisions.md): a GET that returns a stored JSON
signal and a POST that parses a 649-number feature object, each framework under uvicorn (one worker, one
process), load from wrk in a separate process. Litestar is not a kimp dependency: install it to rerun
(`uv pip install litestar==2.25.0`, which co-installs, ../shared/notes/stack.md).

    nice -n 10 .venv/bin/python benchmarks/bench_asgi_frameworks.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIGNAL = {
    "ts": "2024-03-04T10:00:00+00:00", "coin": "BTC", "kr_venue": "upbit", "horizon": 60, "model": "ensemble",
    "model_version": "3", "p_down": 0.41, "p_flat": 0.33, "p_up": 0.26, "target_position": -0.25,
    "feature_ts": "2024-03-04T10:01:00+00:00", "age_ms": 12.5,
}  # fmt: skip
BODY = json.dumps({"coin": "BTC", "kr_venue": "upbit", "features": {f"f{i}": i * 0.001 for i in range(649)}})

FASTAPI_APP = """
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
SIGNAL = {signal!r}
app = FastAPI()
@app.get("/v1/signal/{{coin}}")
async def signal(coin: str, kr_venue: str | None = None) -> Response:
    return Response(orjson.dumps({{**SIGNAL, "coin": coin}}), media_type="application/json")
@app.post("/v1/predict")
async def predict(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(orjson.dumps({{"n": len(body["features"])}}), media_type="application/json")
"""

LITESTAR_APP = """
import orjson
from litestar import Litestar, Request, get, post, Response
SIGNAL = {signal!r}
@get("/v1/signal/{{coin:str}}")
async def signal(coin: str, kr_venue: str | None = None) -> Response:
    return Response(orjson.dumps({{**SIGNAL, "coin": coin}}), media_type="application/json")
@post("/v1/predict")
async def predict(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(orjson.dumps({{"n": len(body["features"])}}), media_type="application/json")
app = Litestar([signal, predict], logging_config=None)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wrk(url: str, seconds: int, script: str | None = None) -> tuple[float, float]:
    cmd = ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    value = float(p99.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]  # type: ignore[union-attr]
    return rps, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kimp-asgi-"))
    lua = tmp / "post.lua"
    lua.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(BODY)}\n"
    )
    results = {}
    for name, source in (("fastapi", FASTAPI_APP), ("litestar", LITESTAR_APP)):
        (tmp / f"app_{name}.py").write_text(source.format(signal=SIGNAL))
        port = _port()
        env = {**os.environ, "PYTHONPATH": str(tmp), "OMP_NUM_THREADS": "1"}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"app_{name}:app", "--port", str(port), "--log-level", "warning",
             "--no-access-log"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.2)
            base = f"http://127.0.0.1:{port}"
            _wrk(f"{base}/v1/signal/BTC?kr_venue=upbit", 2)  # warm-up
            get = _wrk(f"{base}/v1/signal/BTC?kr_venue=upbit", args.seconds)
            post = _wrk(f"{base}/v1/predict", args.seconds, str(lua))
            results[name] = (get, post)
        finally:
            server.terminate()
            server.wait(10)
    load = os.getloadavg()
    for name, ((grps, gp99), (prps, pp99)) in results.items():
        print(f"{name}: get_rps={grps:.0f} get_p99_ms={gp99:.2f} post_rps={prps:.0f} post_p99_ms={pp99:.2f}")
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
