"""Every asset of kimp, built from the settings and partitions (nothing is built at import time)."""

from __future__ import annotations

from dagster import AssetsDefinition

from kimp.features import feature_set_version
from kimp.settings import Settings
from kimp_pipelines.assets.agents import build_agent_assets
from kimp_pipelines.assets.backtest import build_backtest_asset
from kimp_pipelines.assets.features import build_feature_assets
from kimp_pipelines.assets.market_data import build_raw_assets
from kimp_pipelines.assets.models import build_model_assets
from kimp_pipelines.assets.premium import build_premium_asset
from kimp_pipelines.assets.reports import backtest_summary, build_research_report, walk_forward_report
from kimp_pipelines.assets.sentiment import build_sentiment_asset
from kimp_pipelines.assets.tuning import build_tuning_asset
from kimp_pipelines.partitions import Partitions


def build_market_assets(partitions: Partitions) -> list[AssetsDefinition]:
    """The market-data layer alone (raw tables and the premium, with their blocking checks)."""
    return [*build_raw_assets(partitions.daily), build_premium_asset(partitions.daily)]


def build_assets(settings: Settings, partitions: Partitions | None = None) -> list[AssetsDefinition]:
    """Every asset; partition mappings and what each asset computes follow ``settings``."""
    partitions = partitions or Partitions.from_settings(settings)
    return [
        *build_market_assets(partitions),
        build_sentiment_asset(partitions.daily),
        *build_feature_assets(settings.feature_config(), partitions.daily),
        *build_model_assets(
            settings.walk_forward, partitions.daily, feature_set_version(settings.feature_config())
        ),
        build_tuning_asset(settings.walk_forward, partitions.daily),
        *build_agent_assets(settings, partitions.daily),
        build_backtest_asset(partitions),
        walk_forward_report,
        backtest_summary,
        build_research_report(settings),
    ]


__all__ = ["build_assets", "build_market_assets"]
