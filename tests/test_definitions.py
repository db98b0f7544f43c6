"""The one Definitions object loads, validates with the Dagster CLI, and its schedule targets yesterday."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import Definitions, build_schedule_context

from kimp.settings import Settings
from kimp_pipelines.definitions import build_definitions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> Definitions:
    return build_definitions(Settings(home=tmp_path_factory.mktemp("defs")))


def test_definitions_load_with_every_part(defs: Definitions) -> None:
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "upbit_candles",
        "bithumb_candles",
        "binance_candles",
        "fx_usdkrw",
        "orderbook_snapshots",
        "onchain_metrics",
        "macro_daily",
        "news_headlines",
        "kimchi_premium",
    } <= keys
    job = defs.resolve_job_def("market_data_job")
    assert job.partitions_def is not None
    assert job.partitions_def.timezone == "UTC"
    checks = defs.resolve_asset_graph().asset_check_keys
    assert len(checks) == 41 and all(defs.resolve_asset_graph().get_check_spec(k).blocking for k in checks)


def test_daily_schedule_requests_yesterday(defs: Definitions) -> None:
    schedule = defs.resolve_schedule_def("daily_market_data")
    context = build_schedule_context(scheduled_execution_time=datetime(2024, 3, 5, 0, 30, tzinfo=UTC))
    requests = schedule.evaluate_tick(context).run_requests
    assert requests and requests[0].partition_key == "2024-03-04"


def test_every_layer_has_its_job_and_schedule(defs: Definitions) -> None:
    from kimp.backtest import SCENARIOS
    from kimp_pipelines.partitions import SCENARIOS as PARTITION_SCENARIOS

    assert PARTITION_SCENARIOS == SCENARIOS  # the scenario dimension is the engine's list
    expected = {
        "features_job": {"features", "feature_catalog"},
        "training_job": {
            "training_dataset",
            "xgboost_model",
            "lightgbm_model",
            "lstm_model",
            "baseline_models",
            "ensemble",
            "predictions",
            "model_evaluation",
        },
        "tuning_job": {"training_dataset", "optuna_study"},
        "backtest_job": {"backtest_report"},
        "reports_job": {"walk_forward_report", "backtest_summary"},
    }
    for name, assets in expected.items():
        job = defs.resolve_job_def(name)
        assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == assets, name
    # the daily retrain trains for yesterday; the weekly study and the backtests carry idempotent run keys
    tick = datetime(2024, 3, 10, 22, 0, tzinfo=UTC)
    retrain = defs.resolve_schedule_def("daily_retrain").evaluate_tick(
        build_schedule_context(scheduled_execution_time=tick)
    )
    assert retrain.run_requests[0].partition_key == "2024-03-09"
    tuning = defs.resolve_schedule_def("weekly_tuning_schedule").evaluate_tick(
        build_schedule_context(scheduled_execution_time=tick, repository_def=defs.get_repository_def())
    )
    assert [(r.partition_key, r.run_key) for r in tuning.run_requests] == [
        ("2024-03-09", "tuning:2024-03-09")
    ]
    backtests = defs.resolve_schedule_def("daily_backtest_schedule").evaluate_tick(
        build_schedule_context(
            scheduled_execution_time=datetime(2024, 3, 10, 3, 0, tzinfo=UTC),
            repository_def=defs.get_repository_def(),
        )
    )
    keys = [r.partition_key.keys_by_dimension for r in backtests.run_requests]
    assert keys == [{"date": "2024-03-09", "scenario": s} for s in SCENARIOS]
    assert len({r.run_key for r in backtests.run_requests}) == len(SCENARIOS)


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "KIMP_HOME": str(tmp_path / "home")}
    exe = Path(sys.executable).parent / "dagster"
    out = subprocess.run(
        [str(exe), "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_settings_are_read_when_the_location_loads_not_at_import(tmp_path: Path) -> None:
    """Importing the code location reads no setting; loading it reads the environment it runs in."""
    code = (
        "import os, sys; import kimp_pipelines.definitions as d; "
        "os.environ['KIMP_START_DATE'] = '2020-02-02'; "  # set after the import: still honoured
        "job = d.defs().resolve_job_def('market_data_job'); "
        "sys.exit(0 if job.partitions_def.get_first_partition_key() == '2020-02-02' else 1)"
    )
    env = {**os.environ, "KIMP_HOME": str(tmp_path)}
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env).returncode == 0


def test_partitions_follow_the_settings_given(tmp_path: Path) -> None:
    from datetime import date

    defs = build_definitions(Settings(home=tmp_path, start_date=date(2024, 1, 1)))
    assert defs.resolve_job_def("features_job").partitions_def.get_first_partition_key() == "2024-01-01"


def test_domain_packages_never_import_dagster() -> None:
    code = (
        "import sys, kimp.market_data, kimp.premium, kimp.quality, kimp.storage.sql, kimp.settings, "
        "kimp.features, kimp.models.walk_forward, kimp.models.sequence, kimp.backtest, kimp.reporting.summaries; "
        "sys.exit(1 if 'dagster' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
