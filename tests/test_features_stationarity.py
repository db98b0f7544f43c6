"""The ADF stationarity report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from kimp.features.stationarity import adf_report


def test_adf_report_tells_random_walk_from_noise() -> None:
    rng = np.random.default_rng(5)
    n = 1500
    frame = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)],
            "coin": "BTC",
            "walk": np.cumsum(rng.normal(size=n)),
            "noise": rng.normal(size=n),
            "flat": np.ones(n),
            "short": [None] * (n - 10) + list(rng.normal(size=10)),
        }
    )
    report = adf_report(frame, ["walk", "noise", "flat", "short"], max_rows=1000)
    rows = {r["column"]: r for r in report.iter_rows(named=True)}
    assert rows["noise"]["stationary"] is True and rows["noise"]["n_obs"] == 1000
    assert rows["walk"]["stationary"] is False and rows["walk"]["p_value"] > 0.05
    assert rows["flat"]["note"] == "constant" and rows["flat"]["p_value"] is None
    assert rows["short"]["note"].startswith("too few")
    assert report.columns == [
        "column",
        "coin",
        "n_obs",
        "adf_stat",
        "p_value",
        "used_lag",
        "stationary",
        "note",
    ]
