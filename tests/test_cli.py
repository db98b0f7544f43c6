"""The `kimp` command: materialize a range on the configured instance, sql over the store, errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from dagster import RunsFilter

from kimp.settings import Settings
from kimp_pipelines.cli import main
from kimp_pipelines.instance import get_instance


def test_materialize_then_sql(kimp_env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["materialize", "--start", "2024-01-01", "--end", "2024-01-02", "--select", "fx_usdkrw"]
    )
    assert result.exit_code == 0, result.output
    assert "2 run(s)" in result.output and "6 checks passed" in result.output
    assert sorted(p.name for p in (kimp_env / "store" / "fx_usdkrw").iterdir()) == [
        "2024-01-01.parquet",
        "2024-01-02.parquet",
    ]
    # the runs are in the instance the UI reads
    instance = get_instance(Settings.from_env())
    assert len(instance.get_runs(RunsFilter(tags={"kimp/launched_by": "cli"}))) == 2
    out = runner.invoke(
        main,
        ["sql", "SELECT count(DISTINCT CAST(ts AS DATE)) AS days, min(close) > 500 AS sane FROM fx_usdkrw"],
    )
    assert out.exit_code == 0, out.output
    assert out.output == "days,sane\n2,True\n"


def test_bad_inputs_exit_non_zero(kimp_env: Path) -> None:
    runner = CliRunner()
    before_start = runner.invoke(
        main, ["materialize", "--start", "2001-01-01", "--end", "2001-01-01", "--select", "fx_usdkrw"]
    )
    assert before_start.exit_code == 1 and "not a partition" in before_start.output
    assert runner.invoke(main, ["materialize", "--start", "2024-13-01", "--end", "2024-01-01"]).exit_code == 2
    nothing = runner.invoke(
        main, ["materialize", "--start", "2024-01-01", "--end", "2024-01-01", "--select", "no_such_asset"]
    )
    assert nothing.exit_code == 1 and "no_such_asset" in nothing.output and "kimchi_premium" in nothing.output
    bad_sql = runner.invoke(main, ["sql", "SELECT * FROM no_such_table"])
    assert bad_sql.exit_code == 1 and "no_such_table" in bad_sql.output


def test_bad_settings_are_named(kimp_env: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KIMP_SOURCE", "carrier-pigeon")
    result = CliRunner().invoke(main, ["sql", "SELECT 1"])
    assert result.exit_code == 1 and "KIMP_SOURCE" in result.output


def test_demo_runs_end_to_end_and_says_where_to_look(kimp_env: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The smallest demo: a 1-day training window (3 days of simulated market), boosting models only.
    monkeypatch.setenv("KIMP_WF_WINDOW_DAYS", "1")
    monkeypatch.setenv("KIMP_WF_MODELS", "xgboost,lightgbm")
    result = CliRunner().invoke(main, ["demo", "--start", "2024-03-01", "--end", "2024-03-03"])
    assert result.exit_code == 0, result.output
    assert "walk-forward metrics" in result.output and "backtest summary" in result.output
    assert "BTC,upbit,2024-03-01,1440," in result.output
    store = kimp_env / "store"
    for table in ("features", "feature_catalog", "predictions", "model_evaluation", "backtest_report"):
        assert list((store / table).glob("*.parquet")), table
    assert (store / "backtest_summary" / "all.parquet").exists()
    too_short = CliRunner().invoke(main, ["demo", "--start", "2024-03-01", "--end", "2024-03-02"])
    assert too_short.exit_code == 2 and "at least 3 days" in too_short.output
