"""Screenshots of what a researcher sees after `make demo`: the Dagster UI, MLflow's UI and the HTML reports.

Not part of CI (it needs a browser): run it by hand after `make demo` to refresh docs/ui/*.png, which
docs/ui.md shows. It starts `kimp ui` (dagster dev) and `mlflow ui` on free local ports against the demo's
state under $KIMP_HOME (default .kimp/), drives the system's Chromium through Playwright at 1,600 px wide,
and stops both servers when done.

    apt-get install chromium                    # Debian's Chromium (/usr/bin/chromium)
    .venv/bin/uv pip install -e '.[shots]'      # Playwright's Python client (it downloads no browser)
    make demo && .venv/bin/python scripts/ui_screenshots.py [--out docs/ui] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WIDTH = 1600
# Flags that work headless here (no sandbox as root; no background connections on a closed network).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    # Own process group: stopping it stops dagster dev's code server and daemon too.
    with log.open("w") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_http(url: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f}s")


def _dismiss(page: object) -> None:
    """Close the Dagster UI's first-visit 'Join the Dagster community' dialog (it covers every page)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.get_by_role("button", name="Skip").click(timeout=1500)  # type: ignore[attr-defined]


def _shrink(path: Path, max_height: int = 4000) -> None:
    """Keep the committed PNGs small: at most ``max_height`` px tall, 256 colours (UI pages have few)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
    if image.height > max_height:
        image = image.crop((0, 0, image.width, max_height))
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _experiment_id(tracking_uri: str) -> str:
    import mlflow

    experiment = mlflow.MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name("kimp")
    if experiment is None:
        raise SystemExit(f"no MLflow experiment 'kimp' in {tracking_uri}: run `make demo` first")
    return str(experiment.experiment_id)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ui")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--day", default="2024-03-04", help="a predicted day of the demo")
    parser.add_argument("--first", default="2024-03-01", help="the demo's first day")
    parser.add_argument("--last", default="2024-03-05", help="the demo's last day")
    args = parser.parse_args()
    from playwright.sync_api import Page, sync_playwright
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    home = Path(os.environ.get("KIMP_HOME", ROOT / ".kimp")).resolve()
    if not (home / "reports" / "index.html").exists():
        raise SystemExit(f"{home}: no demo output (reports/index.html): run `make demo` first")
    args.out.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    dagster_port, mlflow_port = _free_port(), _free_port()
    logs = home / "screenshots-logs"
    logs.mkdir(exist_ok=True)
    dagster = _start([str(BIN / "kimp"), "ui", "--port", str(dagster_port)], logs / "dagster.log")
    mlflow_ui = _start(
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", tracking_uri, "--port", str(mlflow_port)],
        logs / "mlflow.log",
        env={**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false"},
    )
    dagit = f"http://127.0.0.1:{dagster_port}"
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    shots: list[str] = []
    try:
        _wait_http(f"{dagit}/server_info")
        _wait_http(mlflow_url)
        experiment = _experiment_id(tracking_uri)
        day_range = quote(f"[{args.first}...{args.last}]")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000})

            def shoot(
                name: str, url: str, ready: Callable[[Page], None] | None = None, full: bool = False
            ) -> None:
                page.goto(url)
                page.wait_for_load_state("domcontentloaded")
                _dismiss(page)
                if ready:
                    try:
                        ready(page)
                    except PlaywrightTimeout:  # shoot what is there: a broken page is worth seeing
                        print(f"{name}: the page did not show what was awaited; shooting it as it is")
                page.set_viewport_size({"width": WIDTH, "height": 2200 if full else 1000})
                page.wait_for_timeout(3500)  # the UIs keep polling: let the first answers render
                _dismiss(page)  # the dialog opens a few seconds after the first page
                path = args.out / f"{name}.png"
                page.screenshot(path=str(path), full_page=full)
                _shrink(path)
                shots.append(path.name)
                print(f"{path}  <-  {url}", flush=True)

            def text(value: str) -> Callable[[Page], None]:
                return lambda p: p.get_by_text(value).first.wait_for(timeout=60_000)

            # Dagster
            shoot("dagster-timeline", f"{dagit}/overview/activity/timeline", text("market_data_job"))
            shoot("dagster-job-runs", f"{dagit}/locations/kimp/jobs/training_job/runs", text("training_job"))
            shoot("dagster-asset-groups", f"{dagit}/asset-groups", text("premium"))
            shoot(
                "dagster-premium-partitions",
                f"{dagit}/assets/kimchi_premium?view=partitions&default_range={day_range}&partition={args.day}",
                text("summary"),
                full=True,
            )
            shoot(
                "dagster-features-partition",
                f"{dagit}/assets/features?view=partitions&default_range={day_range}&partition={args.day}",
                text("unavailable"),
                full=True,
            )
            shoot(
                "dagster-backtest-report",
                f"{dagit}/assets/backtest_report?view=partitions&partition={quote(args.day + '|normal')}",
                text("results"),
                full=True,
            )
            shoot(
                "dagster-backtest-summary",
                f"{dagit}/assets/backtest_summary?view=events",
                text("overview"),
                full=True,
            )
            shoot(
                "dagster-walk-forward-report",
                f"{dagit}/assets/walk_forward_report?view=events",
                text("summary"),
                full=True,
            )
            # MLflow
            # MLflow 3.17's UI opens every experiment in its GenAI view (a browser-wide setting, whatever the
            # experiment's kind): ?workflowType=machine_learning opens the runs of model training
            ml = "workflowType=machine_learning"
            shoot("mlflow-runs", f"{mlflow_url}/#/experiments/{experiment}/runs?{ml}", text("xgboost"))
            shoot("mlflow-models", f"{mlflow_url}/#/models?{ml}", text("kimp-xgboost"))
            shoot(
                "mlflow-model-version",
                f"{mlflow_url}/#/models/kimp-xgboost/versions/1?{ml}",
                text("day"),
                full=True,
            )
            # HTML reports
            shoot("report-index", (home / "reports" / "index.html").as_uri(), full=True)
            shoot("report-day", (home / "reports" / "backtest" / args.day / "normal.html").as_uri())
            browser.close()
    finally:
        _stop(dagster)
        _stop(mlflow_ui)
    print(f"{len(shots)} screenshots in {args.out}")


if __name__ == "__main__":
    main()
