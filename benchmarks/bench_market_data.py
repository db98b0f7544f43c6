"""Market-data layer benchmarks (run on demand: `make bench`; figures go to docs/benchmarks.md).

1. generate_and_store: one simulated day of every raw table generated and written to the Parquet store
   (target < 10 s).
2. materialize_partition: one partition of the whole data layer (9 assets + 33 blocking GX checks)
   materialized through Dagster in process, as `kimp materialize` does (target < 30 s); reported with
   and without the one-off imports.
Each runs in a fresh Python process; peak memory is that process's max RSS (target < 2 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap

GENERATE = textwrap.dedent(
    """
    import json, resource, time, sys
    from datetime import date
    t0 = time.perf_counter()
    from kimp.market_data.simulated import SimulatedSource
    from kimp.market_data import VENUES
    from kimp.storage import ParquetStore
    t_import = time.perf_counter() - t0
    day = date.fromisoformat(sys.argv[1]); store = ParquetStore(sys.argv[2])
    src = SimulatedSource(seed=7, orderbook_interval_ms=int(sys.argv[3]))
    t1 = time.perf_counter(); rows = {}
    for venue in VENUES:
        f = src.candles(venue, day); store.write(f"{venue}_candles", str(day), f); rows[f"{venue}_candles"] = f.height
    for name, fn in [("fx_usdkrw", src.fx), ("orderbook_snapshots", src.orderbook), ("onchain_metrics", src.onchain),
                     ("macro_daily", src.macro), ("news_headlines", src.news)]:
        f = fn(day); store.write(name, str(day), f); rows[name] = f.height
    t_work = time.perf_counter() - t1
    print(json.dumps({"seconds": t_work, "import_s": t_import, "rows": rows,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)

MATERIALIZE = textwrap.dedent(
    """
    import json, resource, time, sys, warnings
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    from dagster import DagsterInstance, materialize
    from kimp.settings import Settings
    from kimp_pipelines.assets import build_market_assets
    from kimp_pipelines.partitions import Partitions
    from kimp_pipelines.resources import build_resources
    import kimp.quality.suites as q; q._gx()   # the one-off Great Expectations import (~9 s cold)
    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    settings = Settings(storage_uri=sys.argv[2], orderbook_interval_ms=int(sys.argv[3]))
    res = materialize(build_market_assets(Partitions.from_settings(settings)), partition_key=sys.argv[1],
                      resources=build_resources(settings), instance=DagsterInstance.ephemeral(), raise_on_error=False)
    t_run = time.perf_counter() - t1
    checks = res.get_asset_check_evaluations()
    print(json.dumps({"seconds": t_run, "import_s": t_import, "success": res.success,
                      "checks": len(checks), "checks_passed": sum(c.passed for c in checks),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def _run(script: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--day", default="2024-03-04")
    parser.add_argument("--orderbook-ms", default="5000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for name, script, target in [
        ("generate_and_store", GENERATE, 10.0),
        ("materialize_partition", MATERIALIZE, 30.0),
    ]:
        results = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                results.append(_run(script, args.day, tmp, args.orderbook_ms))
        best = min(results, key=lambda r: r["seconds"])
        secs = sorted(r["seconds"] for r in results)
        peak = max(r["peak_rss_mb"] for r in results)
        print(
            f"{name}: median {secs[len(secs) // 2]:.2f} s (min {secs[0]:.2f}, max {secs[-1]:.2f}) + imports "
            f"{best['import_s']:.2f} s; peak RSS {peak:.0f} MB; target {target:.0f} s / 2048 MB"
        )
        extra = {k: v for k, v in best.items() if k not in ("seconds", "import_s", "peak_rss_mb")}
        print(f"  {extra}")


if __name__ == "__main__":
    main()
