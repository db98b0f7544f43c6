"""End to end on real-format hourly data (tests/fixtures/real_hourly): `kimp walk-forward` then
`kimp backtest`, through Dagster on the project's instance, with the honesty rules asserted from what
was stored (not from the code that stored it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from kimp_pipelines.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "real_hourly"
DAYS = ["2018-01-10", "2018-01-11"]


def _env(home: Path) -> dict[str, str]:
    return {
        "KIMP_HOME": str(home),
        "KIMP_SOURCE": "files",
        "KIMP_DATA_DIR": str(FIXTURE),
        "KIMP_WF_WINDOW_DAYS": "5",
        "KIMP_WF_TRIALS": "2",
        "KIMP_WF_KR_VENUE": "bithumb",  # the 2017-2019 samples have Bithumb, not Upbit
    }


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("wf") / "kimp_home"
    env = _env(home)
    runner = CliRunner()
    result = runner.invoke(
        main, ["walk-forward", "--start", DAYS[0], "--end", DAYS[1], "--no-feature-warmup"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "walk-forward metrics" in result.output
    assert "reused 0 of 8 market-data days and 0 of 8 feature days" in result.output
    # The backtest's market data are the walk-forward's: stored from the same code and files, reused.
    result = runner.invoke(main, ["backtest", "--start", DAYS[0], "--end", DAYS[1]], env=env)
    assert result.exit_code == 0, result.output
    assert "backtest summary" in result.output
    assert "reused 2 of 2 market-data days" in result.output
    return home


def test_a_second_walk_forward_reuses_stored_market_data_and_features(walked: Path) -> None:
    """The stages `kimp walk-forward` runs before training (kimp_pipelines.cli._run_walk_forward), again:
    nothing runs; after an input is materialized again (--recompute of one market-data day), the feature
    days that read it run again and the rest is still reused."""
    from datetime import date

    from kimp.settings import Settings
    from kimp_pipelines.runner import materialize_range

    settings = Settings.from_env(_env(walked))
    first, last = date.fromisoformat(DAYS[0]), date.fromisoformat(DAYS[1])
    window = [first - timedelta(days=6) + timedelta(days=i) for i in range(8)]  # window 5 + 1, then DAYS
    stages = {"market_data_job": window, "features_job": window}
    again = materialize_range(settings, stages, stages=tuple(stages), progress=False, reuse=True)
    assert again.ok and again.runs == [], again.problems
    assert again.reused == {"market_data_job": [8, 8], "features_job": [8, 8]}
    assert "reused 8 of 8 market-data days and 8 of 8 feature days" in (again.reuse_summary() or "")
    stored = (walked / "store" / "features" / f"{DAYS[1]}.parquet").stat().st_mtime_ns

    recomputed = materialize_range(
        settings, {"market_data_job": [first]}, stages=("market_data_job",), progress=False
    )
    assert recomputed.ok and len(recomputed.runs) == 1 and recomputed.reused == {}
    after = materialize_range(
        settings,
        {"market_data_job": [first, last], "features_job": [first, last]},
        stages=("market_data_job", "features_job"),
        progress=False,
        reuse=True,
    )
    # DAYS[1]'s premium reads the FX of DAYS[0] (its look-back) and both feature days read DAYS[0]'s
    # market data: they ran again; DAYS[0]'s market data, materialized just now, is reused
    assert after.ok and after.reused == {"market_data_job": [1, 2], "features_job": [0, 2]}
    assert len(after.runs) == 3
    assert (walked / "store" / "features" / f"{DAYS[1]}.parquet").stat().st_mtime_ns > stored


def _read(home: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(home / "store" / table / "*.parquet")


def test_training_windows_end_before_the_day_minus_embargo(walked: Path) -> None:
    for day in DAYS:
        frame = pl.read_parquet(walked / "store" / "training_dataset" / f"{day}.parquet")
        cutoff = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(minutes=60)
        assert frame["label_known_at"].max() < cutoff  # type: ignore[operator]
        assert set(frame["split"].drop_nulls().unique()) == {"train", "validation", "test"}
        # bars without a usable label are history only: no split, no label
        assert frame.filter(pl.col("split").is_null())["label"].null_count() == frame["split"].null_count()
        # splits are chronological per coin, and purged: no label window reaches into the next split
        for _, part in frame.group_by("coin"):
            train, valid = (
                part.filter(pl.col("split") == "train"),
                part.filter(pl.col("split") == "validation"),
            )
            assert train["label_known_at"].max() < valid["ts"].min()  # type: ignore[operator]


def test_predictions_cover_the_day_for_every_model_and_baseline(walked: Path) -> None:
    preds = _read(walked, "predictions")
    assert preds.columns == ["ts", "coin", "horizon", "model", "p_down", "p_flat", "p_up", "label"]
    assert {"ensemble", "xgboost", "lightgbm", "lstm", "persistence", "majority", "logistic"} <= set(
        preds["model"]
    )
    days = preds["ts"].dt.date().cast(pl.String).unique().sort().to_list()
    assert days == DAYS
    scored = preds.filter(pl.col("p_up").is_not_null())
    total = scored.select(pl.col("p_down") + pl.col("p_flat") + pl.col("p_up")).to_series()
    assert ((total - 1).abs() < 1e-6).all()
    evaluation = _read(walked, "model_evaluation")
    assert {"ensemble", "majority", "persistence", "logistic"} <= set(evaluation["model"])


def test_mlflow_has_runs_and_registered_versions(walked: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{walked / 'mlflow.db'}")
    versions = client.search_model_versions("name='kimp-xgboost'")
    assert len(versions) >= len(DAYS)
    runs = client.search_runs([client.get_experiment_by_name("kimp").experiment_id])
    assert any(r.data.tags.get("model") == "ensemble" for r in runs)
    mlflow.set_tracking_uri("")  # leave no global tracking URI behind for other tests


def test_backtests_per_scenario_and_range_reports(walked: Path) -> None:
    reports = _read(walked, "backtest_report")
    assert set(reports["scenario"]) == {"normal", "high_volatility", "flash_crash", "low_liquidity"}
    assert {"zscore", "ensemble"} <= set(reports["strategy"])
    assert set(reports["engine"]) == {"vectorized", "event_driven"}
    summary = pl.read_parquet(walked / "store" / "backtest_summary" / "all.parquet")
    assert summary.filter(pl.col("scope") == "day").height == reports.height
    # one range row per strategy, coin, venue, engine and scenario, over both days (positions carried)
    ranged = summary.filter(pl.col("scope") == "range")
    assert ranged.height == reports.select("strategy", "coin", "kr_venue", "engine", "scenario").n_unique()
    assert ranged["date"].null_count() == ranged.height and (ranged["days"] == len(DAYS)).all()
    second = reports.filter(pl.col("date") == pl.lit(DAYS[1]).str.to_date())
    assert second["continued"].all()  # day 2 continued from day 1's closing state
    assert (walked / "reports" / "backtest" / DAYS[0] / "flash_crash.html").read_text().startswith("<!")
    wf = pl.read_parquet(walked / "store" / "walk_forward_report" / "all.parquet")
    assert {"ensemble", "majority"} <= set(wf["model"])


# --- what a researcher reads (issue 12): metadata, runs in the UI, MLflow models, reports --------------


def _scoring_input(walked: Path, day: str, inputs: list[str]) -> pl.DataFrame:
    """The stored features up to the end of ``day`` (its history included, as the predictions asset
    reads it), with ``last_move`` joined when a model (persistence) reads it."""
    features = pl.concat(
        [
            pl.read_parquet(p)
            for p in sorted((walked / "store" / "features").glob("*.parquet"))
            if p.stem <= day
        ],
        how="vertical_relaxed",
    ).sort("coin", "ts")
    if "last_move" in inputs:
        from kimp.models.base import WalkForwardConfig
        from kimp.models.walk_forward import labels_with_last_move

        config = WalkForwardConfig(window_days=5, kr_venue="bithumb")
        labels = labels_with_last_move(config, premium=_read(walked, "kimchi_premium"))
        features = features.join(labels.select("ts", "coin", "last_move"), on=["ts", "coin"], how="left")
    return features


def test_registered_models_load_through_mlflow_and_reproduce_the_predictions(walked: Path) -> None:
    import mlflow
    import numpy as np

    from kimp.models.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, pyfunc_input

    uri = f"sqlite:///{walked / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    predictions = _read(walked, "predictions")
    checked = set()
    mlflow.set_tracking_uri(uri)
    try:
        for registered in client.search_registered_models("name LIKE 'kimp-%'"):
            for mv in client.search_model_versions(f"name = '{registered.name}'"):
                model, day = mv.tags["model"], mv.tags["day"]
                assert mv.description and mv.tags["features_hash"]
                assert str(client.get_model_version_by_alias(registered.name, f"day-{day}").version) == str(
                    mv.version
                )
                loaded = mlflow.pyfunc.load_model(f"models:/{registered.name}/{mv.version}")
                inputs = loaded.metadata.signature.inputs.input_names()
                frame = _scoring_input(walked, day, inputs)
                got = loaded.predict(pyfunc_input(frame))
                today = (frame["ts"].dt.date().cast(pl.String) == day).to_numpy()
                expected = (
                    predictions.filter(
                        (pl.col("model") == model) & (pl.col("ts").dt.date().cast(pl.String) == day)
                    )
                    .sort("coin", "ts")
                    .select("p_down", "p_flat", "p_up")
                    .fill_null(float("nan"))
                    .to_numpy()
                )
                np.testing.assert_allclose(got.to_numpy()[today], expected, rtol=0, atol=1e-9, equal_nan=True)
                checked.add(model)
    finally:
        mlflow.set_tracking_uri("")  # leave no global tracking URI behind for other tests
    assert {"xgboost", "lightgbm", "lstm", "ensemble"} <= checked
    experiment = client.get_experiment_by_name("kimp")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.model = 'xgboost'")
    assert {r.info.run_name for r in runs} == {f"xgboost {d}" for d in DAYS}
    # the Dagster runs' MLflow runs (their parents) say job and day
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`kimp.dagster_run` LIKE '%'")
    assert {f"training_job {d}" for d in DAYS} <= {r.info.run_name for r in parents}


def test_reports_name_their_strategy_and_the_range_index_links_every_report(walked: Path) -> None:
    reports = _read(walked, "backtest_report")
    page = (walked / "reports" / "backtest" / DAYS[0] / "normal.html").read_text()
    for strategy in set(reports["strategy"]):
        assert f"<h2 id='{strategy}-" in page  # each section's heading starts with its strategy
    assert "annualised from 1 day" in page
    index = (walked / "reports" / "index.html").read_text()
    for day in DAYS:
        for scenario in set(reports["scenario"]):
            link = f"backtest/{day}/{scenario}.html"
            assert f"href='{link}'" in index and (walked / "reports" / link).exists()
