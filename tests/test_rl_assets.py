"""The daily agent assets through `dagster.materialize` (tiny training runs on real-format hourly data):
trained only on bars closing by D minus the embargo (asserted from the stored card), saved, registered in
MLflow, loadable."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from kimp.rl.config import RLSettings
from kimp.settings import BacktestSettings, Settings
from kimp_pipelines.assets import build_assets
from kimp_pipelines.partitions import Partitions
from kimp_pipelines.resources import build_resources

FIXTURE = Path(__file__).parent / "fixtures" / "real_hourly"
DAY = date(2018, 1, 12)  # a Friday: the window's days all have a fresh USD/KRW fixing


@pytest.fixture(scope="module")
def materialized(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The upstream partitions written straight into the store (the market-data assets have their own
    tests), then the two agent assets of DAY materialized through Dagster."""
    from kimp.market_data.files import FilesSource
    from kimp.premium import compute_premium
    from kimp.storage import ParquetStore

    home = tmp_path_factory.mktemp("rl_assets")
    settings = Settings(
        home=home,
        source="files",
        data_dir=str(FIXTURE),
        backtest=BacktestSettings(kr_venues=("bithumb",)),
        rl=RLSettings(window_days=2, total_timesteps=256, n_envs=2),
    )
    store = ParquetStore(str(settings.storage_uri))
    src = FilesSource(FIXTURE)
    for k in range(3, 0, -1):  # the window (2 days) and its warm-up day
        day = DAY - timedelta(days=k)
        candles = {v: src.candles(v, day) for v in ("upbit", "bithumb", "binance")}
        fx = pl.concat([src.fx(day - timedelta(days=j)) for j in range(7, -1, -1)])
        premium = compute_premium({"bithumb": candles["bithumb"]}, candles["binance"], fx, day=day)
        store.write("kimchi_premium", day.isoformat(), premium)
        for venue, frame in candles.items():
            store.write(f"{venue}_candles", day.isoformat(), frame)
    partitions = Partitions.from_settings(settings)
    result = materialize(
        build_assets(settings, partitions),
        partition_key=DAY.isoformat(),
        selection=["ppo_agent", "dqn_agent"],
        resources=build_resources(settings),
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    return settings


@pytest.mark.parametrize("kind", ["ppo", "dqn"])
def test_agent_asset_trains_before_the_cutoff_and_registers(materialized, kind: str) -> None:
    from mlflow import MlflowClient

    from kimp.rl.agents import Agent

    settings = materialized
    card = pl.read_parquet(Path(settings.storage_uri) / f"{kind}_agent" / f"{DAY}.parquet").row(0, named=True)
    cutoff = datetime(2018, 1, 11, 23, tzinfo=UTC)  # D 00:00 - 60 minutes
    assert card["cutoff"] == cutoff
    assert card["last_train_bar_close"] == cutoff  # the 22:00 bar of D-1 is the newest it learned from
    assert card["train_episodes"] == 2 and card["validation_episodes"] == 2  # 2 coins x (1 + 1 days)
    assert card["steps"] >= 256 and not card["budget_hit"]
    agent = Agent.load(Path(card["path"]))
    assert agent.kind == kind and agent.report.steps == card["steps"]
    versions = MlflowClient(tracking_uri=settings.mlflow_uri).search_model_versions(f"name='kimp-{kind}'")
    assert [v.run_id for v in versions] == [card["mlflow_run_id"]]
