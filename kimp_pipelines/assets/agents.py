"""Daily reinforcement-learning agents: ``ppo_agent(D)`` and ``dqn_agent(D)``, walk-forward like every model.

Each is trained by :func:`kimp.rl.walk_forward.train_day` on the window of days before D that ends at
``D 00:00 UTC - embargo`` (``Settings.rl``), over the backtest's markets (coins and Korean venues of
``Settings.backtest``) under the backtest's own accounting; it is saved under
``$KIMP_HOME/models/<agent>/<day>/``, logged to MLflow in a run nested in the Dagster run's and registered
as a version of ``kimp-<agent>``, and acts on day D as the backtest strategy of the same name. The output
is a one-row card: what was trained, on what, up to which bar, and how it scored on the held-out days.
"""

import json
from collections.abc import Iterator
from typing import Any

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from kimp.rl.config import AGENTS
from kimp.settings import Settings
from kimp.timeutil import parse_day
from kimp_pipelines.resources.io_manager import ALLOW_MISSING

GROUP = "agents"
CANDLES = ("upbit_candles", "bithumb_candles", "binance_candles")


def agent_asset_name(kind: str) -> str:
    return f"{kind}_agent"


def _window(days: int) -> AssetIn:
    """The ``days`` daily partitions before D (D itself excluded)."""
    return AssetIn(
        partition_mapping=TimeWindowPartitionMapping(
            start_offset=-days, end_offset=-1, allow_nonexistent_upstream_partitions=True
        ),
        metadata={ALLOW_MISSING: True},
    )


def build_agent_assets(settings: Settings, partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    """One daily asset per agent kind (PPO, Dueling DQN)."""
    return [_agent_asset(kind, settings, partitions) for kind in AGENTS]


def _agent_asset(kind: str, settings: Settings, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    rl = settings.rl
    days = rl.window_days + 1  # the window and the warm-up day before it
    label = {"ppo": "PPO (stable-baselines3)", "dqn": "Dueling DQN with prioritized replay (tianshou)"}[kind]

    @asset(
        name=agent_asset_name(kind),
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"pytorch", "mlflow"},
        required_resource_keys={"mlflow", "modeling"},
        ins={"kimchi_premium": _window(days), **{name: _window(days) for name in CANDLES}},
        description=f"{label} agent of day D: trained on the {rl.window_days} days before D, up to the bar "
        f"closing at D - {rl.embargo_minutes} min, through the backtest's own accounting; acts on D as the "
        f"backtest strategy '{kind}'.",
    )
    def _agent(
        context: AssetExecutionContext,
        kimchi_premium: pl.DataFrame,
        upbit_candles: pl.DataFrame,
        bithumb_candles: pl.DataFrame,
        binance_candles: pl.DataFrame,
    ) -> Iterator[Output[pl.DataFrame]]:
        from kimp.rl.walk_forward import RLWalkForward, train_day

        day = parse_day(context.partition_key)
        wf = RLWalkForward.from_settings(
            rl, coins=settings.backtest.coins, kr_venues=settings.backtest.kr_venues
        )
        parts = [f for f in (upbit_candles, bithumb_candles, binance_candles) if f.width]
        tables = {
            "premium": kimchi_premium,
            "candles": pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame(),
            "orderbook": pl.DataFrame(),
        }
        if not kimchi_premium.width:
            raise ValueError(
                f"{kind}_agent {day}: no premium stored for the {days} days before it; materialize market data "
                "for the window first (kimp rl train and kimp backtest do)"
            )

        def progress(done: int, total: int) -> None:
            if done and done % max(1, total // 4) < 1024:
                context.log.info(f"{kind}_agent {day}: {done:,} / {total:,} steps")

        trained = train_day(day, kind, tables, wf, rl.agent(kind, settings.seed), progress=progress)
        path = context.resources.modeling.model_path(kind, day.isoformat())
        trained.agent.save(path)
        card = trained.card()
        params = {
            "window_days": rl.window_days,
            "embargo_minutes": rl.embargo_minutes,
            "total_timesteps": rl.total_timesteps,
            "max_train_seconds": rl.max_train_seconds,
            "n_envs": rl.n_envs,
            "seed": settings.seed,
            "coins": ",".join(wf.coins),
            "kr_venues": ",".join(wf.kr_venues),
        }
        run_id, version = context.resources.mlflow.log_model(
            context,
            name=kind,
            day=day,
            model_dir=path,
            params=params,
            metrics={k: v for k, v in card.items() if isinstance(v, int | float) and not isinstance(v, bool)},
            tags={"kind": "agent"},
        )
        context.log.info(
            f"{kind}_agent {day}: {card['steps']:,} steps in {card['train_seconds']} s"
            + (" (stopped by the time budget)" if card["budget_hit"] else "")
            + f" on {card['train_episodes']} episodes up to {card['last_train_bar_close']}; validation return "
            f"{card['val_total_return']:+.4%}; MLflow run {run_id}, kimp-{kind} version {version}"
        )
        row: dict[str, Any] = {
            **card,
            "path": str(path),
            "mlflow_run_id": run_id,
            "registered_version": version,
            "notes": json.dumps(trained.notes),
        }
        frame = pl.DataFrame([row]).with_columns(
            pl.col("cutoff", "last_train_bar_close").dt.replace_time_zone("UTC"), pl.col("day").cast(pl.Date)
        )
        yield Output(
            frame,
            metadata={
                "dagster/row_count": 1,
                "cutoff": card["cutoff"].isoformat(),
                "last_train_bar_close": card["last_train_bar_close"].isoformat(),
                "train_episodes": MetadataValue.json(trained.train_episodes),
                "validation_episodes": MetadataValue.json(trained.validation_episodes),
                "steps": card["steps"],
                "train_seconds": card["train_seconds"],
                "budget_hit": card["budget_hit"],
                **{k: v for k, v in card.items() if k.startswith("val_") and v == v},
                "model_path": str(path),
                "mlflow_run_id": run_id or "",
                "skipped": MetadataValue.json(trained.notes),
            },
        )

    return _agent
