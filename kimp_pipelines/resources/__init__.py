"""Resources, chosen per environment in this one place.

``KIMP_ENV`` picks the deployment: ``local`` (default: the embedded simulated market and a local Parquet
store, nothing to start) or ``prod`` (must name a remote store, e.g. ``s3://``). Every setting comes from
the environment (see :mod:`kimp.settings`); where a variable is set it is bound through ``EnvVar`` so the
Dagster UI shows its origin and never stores secret values. Credentials (S3 keys, exchange API keys,
the Postgres DSN of the instance) are read only from the environment, never from config files.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar

from kimp.settings import Settings
from kimp_pipelines.resources.backtest import BacktestResource
from kimp_pipelines.resources.io_manager import ParquetIOManager
from kimp_pipelines.resources.market_data import MarketDataResource
from kimp_pipelines.resources.modeling import ModelingResource, kimp_mlflow
from kimp_pipelines.resources.quality import QualityResource
from kimp_pipelines.resources.store import StoreResource

ENVIRONMENTS = ("local", "prod")


def _env_or(name: str, default: Any, *, as_int: bool = False) -> Any:
    if os.environ.get(name):
        return EnvVar.int(name) if as_int else EnvVar(name)
    return default


def build_resources(env: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    env = env or os.environ.get("KIMP_ENV", "local")
    if env not in ENVIRONMENTS:
        raise ValueError(f"KIMP_ENV={env!r}: expected one of {ENVIRONMENTS}")
    s = settings or Settings.from_env()  # validates every setting up front, with clear messages
    if env == "prod" and "://" not in s.storage_uri:
        raise ValueError(
            "KIMP_ENV=prod needs KIMP_STORAGE_URI to name a shared store such as s3://bucket/kimp"
        )
    # Paths stay resolved values (relative paths must not depend on the code server's working folder).
    io_manager = ParquetIOManager(base_uri=s.storage_uri)
    return {
        "market_data": MarketDataResource(
            kind=s.source,
            data_dir=s.data_dir,
            seed=_env_or("KIMP_SEED", s.seed, as_int=True),
            orderbook_interval_ms=_env_or("KIMP_ORDERBOOK_MS", s.orderbook_interval_ms, as_int=True),
        ),
        "quality": QualityResource(
            max_gap_minutes=_env_or("KIMP_MAX_GAP_MINUTES", s.max_gap_minutes, as_int=True),
            max_fx_age_hours=_env_or("KIMP_MAX_FX_AGE_HOURS", s.max_fx_age_hours, as_int=True),
        ),
        "io_manager": io_manager,
        "store": StoreResource(base_uri=s.storage_uri),
        "backtest": BacktestResource(
            strategies=_env_or("KIMP_BT_STRATEGIES", "zscore,ensemble"),
            seed=_env_or("KIMP_SEED", s.seed, as_int=True),
            report_dir=str(s.home / "reports" / "backtest"),
        ),
        "modeling": ModelingResource(
            horizon_minutes=_env_or("KIMP_WF_HORIZON_MINUTES", s.wf_horizon_minutes, as_int=True),
            window_days=_env_or("KIMP_WF_WINDOW_DAYS", s.wf_window_days, as_int=True),
            n_trials=_env_or("KIMP_WF_TRIALS", s.wf_trials, as_int=True),
            models=",".join(s.wf_models),
            lstm_size=s.wf_lstm_size,
            kr_venue=s.wf_kr_venue,
            seed=_env_or("KIMP_SEED", s.seed, as_int=True),
            model_dir=str(s.model_dir),
            # May hold a password (a shared Postgres study store): bound through EnvVar when set.
            optuna_storage=_env_or("KIMP_OPTUNA_STORAGE", s.optuna_storage),
        ),
        # MLflow through dagster-mlflow: one MLflow run per Dagster run, nested runs per model and day.
        "mlflow": kimp_mlflow.configured(
            {
                "experiment_name": "kimp",
                "mlflow_tracking_uri": s.mlflow_uri,
                # local tracking keeps artifacts next to the database; a server decides for itself
                "artifact_location": str(s.home / "mlflow-artifacts")
                if s.mlflow_uri.startswith("sqlite")
                else None,
            }
        ),
    }


__all__ = [
    "ENVIRONMENTS",
    "MarketDataResource",
    "ModelingResource",
    "ParquetIOManager",
    "QualityResource",
    "build_resources",
]
