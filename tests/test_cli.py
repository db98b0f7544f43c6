"""The `kimp` command: materialize a range on the configured instance, sql over the store, errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from dagster import DagsterInstance, RunsFilter

from kimp.settings import Settings
from kimp_pipelines.cli import main
from kimp_pipelines.instance import get_instance


def test_materialize_then_sql(kimp_env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["materialize", "--start", "2024-01-01", "--end", "2024-01-02", "--select", "fx_usdkrw"]
    )
    assert result.exit_code == 0, result.output
    assert "2 run(s)" in result.output and "8 checks passed" in result.output
    assert sorted(p.name for p in (kimp_env / "store" / "fx_usdkrw").iterdir()) == [
        "2024-01-01.parquet",
        "2024-01-02.parquet",
    ]
    # the runs are in the instance the UI reads, as runs of the code location: listed by the job's runs
    # query and placed in the timeline (which drops runs without a repository origin)
    instance = get_instance(Settings.from_env())
    cli_runs = {r.run_id for r in instance.get_runs(RunsFilter(tags={"kimp/launched_by": "cli"}))}
    assert len(cli_runs) == 2
    job_runs, timeline = _ui_queries(instance, "market_data_job")
    assert set(job_runs) == cli_runs
    assert {r["id"]: r["repositoryOrigin"] for r in timeline} == {
        run_id: {"repositoryName": "__repository__", "repositoryLocationName": "kimp"} for run_id in cli_runs
    }
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
    assert "/runs?workflowType=machine_learning" in result.output  # MLflow opens on the experiment's runs
    # It ends with live signals of the champion just registered: 4 bars of both coins, each scored.
    assert "Live signals:" in result.output and "4 bars, 8 signals" in result.output, result.output
    assert "live signals failed" not in result.output
    store = kimp_env / "store"
    for table in ("features", "feature_catalog", "predictions", "model_evaluation", "backtest_report"):
        assert list((store / table).glob("*.parquet")), table
    assert (store / "backtest_summary" / "all.parquet").exists()
    too_short = CliRunner().invoke(main, ["demo", "--start", "2024-03-01", "--end", "2024-03-02"])
    assert too_short.exit_code == 2 and "at least 3 days" in too_short.output


JOB_RUNS = """
query JobRuns($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) { ... on Pipeline { runs { runId } } ... on PythonError { message } }
}"""
TIMELINE = """
query Timeline {
  runsOrError { ... on Runs { results { id pipelineName repositoryOrigin { repositoryName repositoryLocationName } } } }
}"""


def _ui_queries(instance: DagsterInstance, job: str) -> tuple[list[str], list[dict]]:
    """What the Dagster UI asks its GraphQL server: a job's Runs tab and the runs of the timeline."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="kimp_pipelines.definitions"), location_name="kimp"
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process:
        context = process.create_request_context()
        selector = {"pipelineName": job, "repositoryName": "__repository__", "repositoryLocationName": "kimp"}
        runs = execute_dagster_graphql(context, JOB_RUNS, {"selector": selector}).data["pipelineOrError"][
            "runs"
        ]
        timeline = execute_dagster_graphql(context, TIMELINE).data["runsOrError"]["results"]
    return [r["runId"] for r in runs], [r for r in timeline if r["pipelineName"] == job]
