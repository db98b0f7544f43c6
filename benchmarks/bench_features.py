"""Feature-store speed: one day and one year of 1-minute data for two coins.

Targets (issue 3): a day in under 2 s; a year (525,600 bars per coin, two coins) in under 20 s with peak
memory under 6 GB on a 2-core machine. Inputs are synthesized with numpy (kimp.testing,
same schemas; order books at one snapshot per minute for the year, 5 s for the day) because generating
a year through the simulated source takes ~9 minutes. Each case runs in a fresh process so that its
peak RSS (ru_maxrss) is its own; "inputs RSS" is the peak after generating the inputs, before features.

Usage: .venv/bin/python benchmarks/bench_features.py [day|year|simday|all]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def _case(name: str) -> dict[str, object]:
    from kimp.features import FeatureConfig, build_features, lookback_days
    from kimp.testing import synthetic_inputs

    config = FeatureConfig()
    history = lookback_days(config)["premium"]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    days = {"day": 1, "year": 365}[name]
    t0 = time.perf_counter()
    inputs = synthetic_inputs(
        start - timedelta(days=history), history + days, orderbook_every_s=5 if name == "day" else 60
    )
    gen_s = time.perf_counter() - t0
    inputs_rss = _rss_gb()
    # warm the numba caches and imports on a tiny window so the timing is the steady-state cost
    build_features(inputs, start=start, end=start + timedelta(hours=1), config=config)
    t0 = time.perf_counter()
    result = build_features(inputs, start=start, end=start + timedelta(days=days), config=config)
    seconds = time.perf_counter() - t0
    return {
        "case": name,
        "rows": result.frame.height,
        "features": result.frame.width - 3,
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(_rss_gb(), 2),
        "inputs_rss_gb": round(inputs_rss, 2),
        "generate_inputs_s": round(gen_s, 1),
    }


def _simulated_day() -> dict[str, object]:
    """One day from the simulated source (5-second books) with one day of history."""

    from kimp.features import build_features
    from kimp.testing import simulated_source_inputs
    from kimp.timeutil import day_start

    days = [datetime(2024, 3, 4, tzinfo=UTC).date(), datetime(2024, 3, 5, tzinfo=UTC).date()]
    inputs = simulated_source_inputs(days)
    start = day_start(days[1])
    build_features(inputs, start=start, end=start + timedelta(hours=1))
    t0 = time.perf_counter()
    result = build_features(inputs, start=start, end=start + timedelta(days=1))
    return {
        "case": "simday",
        "rows": result.frame.height,
        "features": result.frame.width - 3,
        "seconds": round(time.perf_counter() - t0, 2),
        "peak_rss_gb": round(_rss_gb(), 2),
    }


def _reference() -> float:
    """Seconds for 610 plain polars rolling means over 525,600 rows (3.3 s on an idle 2-core machine):
    printed beside the figures so that a run on a busy machine can be read in proportion."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(0)
    frame = pl.DataFrame({f"x{i}": np.cumsum(rng.normal(size=525_600)) for i in range(10)})
    exprs = [
        pl.col(f"x{i % 10}").rolling_mean(window_size=5 + i, min_samples=1).cast(pl.Float32).alias(f"f{i}")
        for i in range(610)
    ]
    t0 = time.perf_counter()
    frame.select(exprs)
    return time.perf_counter() - t0


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        case = sys.argv[2]
        if case == "reference":
            out: dict[str, object] = {"case": case, "seconds": round(_reference(), 2)}
        else:
            out = _simulated_day() if case == "simday" else _case(case)
        print(json.dumps(out))
        return
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    cases = ["day", "simday", "year"] if which == "all" else [which]
    # the reference runs in its own process too (ru_maxrss survives exec on Linux, so a parent that
    # allocated would inflate every child's peak), before and after the cases
    for case in ["reference", *cases, "reference"]:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", case], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            print(f"{case}: FAILED\n{proc.stderr[-3000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if case == "reference":
            print(
                f"reference: 610 plain polars rolling means over 525,600 rows in {r['seconds']:.2f} s "
                "(~3.3 s on an idle 2-core machine; read the figures in proportion)"
            )
            continue
        extra = (
            f", inputs {r['inputs_rss_gb']} GB (generated in {r['generate_inputs_s']} s)"
            if "inputs_rss_gb" in r
            else ""
        )
        print(
            f"{case:>6}: {r['rows']:>9,} rows x {r['features']} features in {r['seconds']:>6.2f} s, "
            f"peak RSS {r['peak_rss_gb']} GB{extra}"
        )


if __name__ == "__main__":
    main()
