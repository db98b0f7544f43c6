"""The Optuna study asset: a weekly (and on demand) search of the tunable members' parameters."""

import json

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MetadataValue,
    Output,
    asset,
)

from kimp.models import registry
from kimp.models.base import WalkForwardConfig
from kimp.models.studies import study_name
from kimp.timeutil import parse_day
from kimp_pipelines.resources.modeling import ModelingResource


def build_tuning_asset(config: WalkForwardConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    """``optuna_study``: one study per configured member with a search space (kimp.models.registry)."""
    tunable = [s for s in registry.members(config.models) if s.tunable]

    @asset(partitions_def=partitions, group_name="models", kinds={"optuna"})
    def optuna_study(
        context: AssetExecutionContext, modeling: ModelingResource, training_dataset: pl.DataFrame
    ) -> Output[pl.DataFrame]:
        """TPE search with median pruning over purged time-series CV on the training window of D, per
        tunable model; studies persist in Optuna storage (SQLite under KIMP_HOME, or any RDB URL shared by
        workers). Daily retrains of day >= D use the newest such study."""
        from kimp.models.tuning import tune

        day = parse_day(context.partition_key)
        rows = []
        for spec in tunable:
            name = study_name(spec.name, day, config)
            context.log.info(f"optuna {name}: {config.n_trials} trials, {config.cv_folds}-fold purged CV")
            best = tune(spec, training_dataset, config, modeling.optuna_storage, name)
            rows.append(
                {
                    "day": day,
                    "model": spec.name,
                    "study": name,
                    "trials": config.n_trials,
                    "best_params": json.dumps(best, default=str, sort_keys=True),
                }
            )
        frame = pl.DataFrame(
            rows,
            schema={
                "day": pl.Date,
                "model": pl.String,
                "study": pl.String,
                "trials": pl.Int64,
                "best_params": pl.String,
            },
        )
        return Output(
            frame,
            metadata={
                "studies": MetadataValue.json({r["study"]: json.loads(r["best_params"]) for r in rows}),
                "storage": modeling.optuna_storage.split("@")[-1],
            },
        )

    return optuna_study
