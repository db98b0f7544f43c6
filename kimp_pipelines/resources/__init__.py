"""Resources, built in this one place from the settings (kimp.settings.Settings).

``settings.env`` (KIMP_ENV) picks the deployment: ``local`` (default: the embedded simulated market and a
local Parquet store, nothing to start) or ``prod`` (must name a remote store, e.g. ``s3://``; Settings
checks it). Resources hold connections (sources, stores, tracking servers) and where things are written;
what the assets compute is decided by the settings the asset factories are given. A secret-bearing
value that came from an environment variable (the Optuna and MLflow URLs may hold passwords) is bound
through ``EnvVar``, so the Dagster UI shows the variable's name, never the value. Other credentials (S3
keys, exchange API keys) are read only from the environment by the libraries that use them.
"""

from __future__ import annotations

import json
from typing import Any

from dagster import EnvVar

from kimp.settings import Settings
from kimp_pipelines.resources.backtest import BacktestResource
from kimp_pipelines.resources.io_manager import ParquetIOManager
from kimp_pipelines.resources.market_data import MarketDataResource
from kimp_pipelines.resources.modeling import MlflowResource, ModelingResource
from kimp_pipelines.resources.quality import QualityResource
from kimp_pipelines.resources.sentiment import SentimentResource
from kimp_pipelines.resources.store import StoreResource


def secret(settings: Settings, variable: str, value: str) -> Any:
    """``EnvVar(variable)`` when ``value`` is what that variable holds, else the value itself (e.g. set
    in code, or changed by the CLI), so that the resource always gets the settings' value."""
    return EnvVar(variable) if settings.env_values.get(variable) == value else value


def build_resources(settings: Settings) -> dict[str, Any]:
    s = settings
    # Paths stay resolved values (relative paths must not depend on the code server's working folder).
    return {
        "market_data": MarketDataResource(
            kind=s.source,
            data_dir=s.data_dir,
            seed=s.seed,
            orderbook_interval_ms=s.orderbook_interval_ms,
            news_feeds=",".join(s.sentiment.news_feeds),
            news_dir=str(s.home / "news"),
        ),
        "sentiment": SentimentResource(
            mlflow_uri=secret(s, "KIMP_MLFLOW_URI", str(s.mlflow_uri)),
            cache_dir=str(s.model_dir / "sentiment" / "registry"),
            threads=s.sentiment.threads,
        ),
        "quality": QualityResource(
            max_gap_minutes=s.max_gap_minutes,
            max_fx_age_hours=s.max_fx_age_hours,
            allow_shrink=s.allow_shrink,
        ),
        "io_manager": ParquetIOManager(base_uri=str(s.storage_uri)),
        "store": StoreResource(base_uri=str(s.storage_uri)),
        "backtest": BacktestResource(
            strategies=",".join(s.backtest.strategies),
            coins=",".join(s.backtest.coins),
            kr_venues=",".join(s.backtest.kr_venues),
            params=json.dumps({k: dict(v) for k, v in s.backtest.params.items()}, sort_keys=True),
            carry=s.backtest.carry,
            seed=s.seed,
            report_dir=str(s.report_dir / "backtest"),
        ),
        "modeling": ModelingResource(
            model_dir=str(s.model_dir),
            optuna_storage=secret(s, "KIMP_OPTUNA_STORAGE", str(s.optuna_storage)),
        ),
        # One MLflow run per Dagster run, a nested run per model and day (kimp_pipelines.resources.modeling).
        "mlflow": MlflowResource(
            tracking_uri=secret(s, "KIMP_MLFLOW_URI", str(s.mlflow_uri)),
            # local tracking keeps artifacts next to the database; a server decides for itself
            artifact_location=str(s.home / "mlflow-artifacts")
            if str(s.mlflow_uri).startswith("sqlite")
            else None,
        ),
    }


__all__ = [
    "MarketDataResource",
    "MlflowResource",
    "ModelingResource",
    "ParquetIOManager",
    "QualityResource",
    "SentimentResource",
    "build_resources",
]
