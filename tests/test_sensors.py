"""The new-files sensor, evaluated with a test context."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorDefinition, SkipReason, build_sensor_context

from kimp.settings import Settings
from kimp_pipelines.definitions import build_definitions
from kimp_pipelines.jobs.sensors import MAX_DAYS_PER_TICK


def sensor_for(settings: Settings) -> SensorDefinition:
    """The sensor as the Definitions built from ``settings`` hold it."""
    return build_definitions(settings).resolve_sensor_def("new_market_files")


def _write_candles(path: Path, first_day: str, days: int, close: float = 4_000_000.0) -> None:
    from datetime import datetime, timedelta

    start = datetime.fromisoformat(first_day)
    lines = ["ts_utc,open,high,low,close,volume_btc,volume_krw"]
    for h in range(24 * days):
        ts = (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{ts},{close},{close + 1},{close - 1},{close},1.0,{close}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def files_env(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    _write_candles(data / "bithumb_BTCKRW_1h.csv", "2018-01-01", 2)
    (data / "USDKRW_daily.csv").write_text(
        "date,close\n2017-12-29,1070.5\n2018-01-01,1068.0\n2018-01-02,1062.1\n"
    )
    return data


@pytest.fixture
def new_market_files(files_env: Path, tmp_path: Path) -> SensorDefinition:
    return sensor_for(Settings(home=tmp_path / "home", source="files", data_dir=str(files_env)))


def test_new_files_request_the_days_they_touch_once(files_env: Path, new_market_files) -> None:
    instance = DagsterInstance.ephemeral()
    first = new_market_files(build_sensor_context(instance=instance))
    keys = sorted(r.partition_key for r in first.run_requests)
    assert keys == ["2017-12-29", "2018-01-01", "2018-01-02"]
    assert all(r.run_key.startswith(f"files:{r.partition_key}:") for r in first.run_requests)
    # same files, cursor carried: nothing to do
    again = new_market_files(build_sensor_context(instance=instance, cursor=first.cursor))
    assert isinstance(again, SkipReason)
    # a changed file re-triggers only its own days, with new run keys
    _write_candles(files_env / "bithumb_BTCKRW_1h.csv", "2018-01-02", 1, close=4_100_000.0)
    os.utime(files_env / "bithumb_BTCKRW_1h.csv", ns=(1, 2_000_000_000_000_000_000))
    third = new_market_files(build_sensor_context(instance=instance, cursor=first.cursor))
    assert [r.partition_key for r in third.run_requests] == ["2018-01-02"]
    assert third.run_requests[0].run_key not in {r.run_key for r in first.run_requests}


def test_history_is_capped_to_recent_days(files_env: Path, new_market_files) -> None:
    _write_candles(files_env / "bithumb_BTCKRW_1h.csv", "2018-01-01", 30)
    result = new_market_files(build_sensor_context(instance=DagsterInstance.ephemeral()))
    keys = [r.partition_key for r in result.run_requests]
    assert len(keys) == MAX_DAYS_PER_TICK and keys[-1] == "2018-01-30"


def test_skips_unless_files_source(tmp_path: Path) -> None:
    sensor = sensor_for(Settings(home=tmp_path))
    assert isinstance(sensor(build_sensor_context(instance=DagsterInstance.ephemeral())), SkipReason)
