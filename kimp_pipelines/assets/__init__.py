"""All assets and asset checks of kimp."""

from kimp.settings import Settings
from kimp_pipelines.assets.backtest import backtest_report
from kimp_pipelines.assets.features import feature_assets
from kimp_pipelines.assets.market_data import raw_assets
from kimp_pipelines.assets.models import build_model_assets
from kimp_pipelines.assets.premium import kimchi_premium
from kimp_pipelines.assets.reports import backtest_summary, walk_forward_report
from kimp_pipelines.assets.tuning import optuna_study

# The market-data layer alone (raw tables and the premium): what its tests materialize.
market_assets = [*raw_assets, kimchi_premium]


def build_assets(settings: Settings) -> list:
    """Every asset; the training window's partition mapping follows ``settings``."""
    return [
        *market_assets,
        *feature_assets,
        *build_model_assets(settings.wf_window_days),
        optuna_study,
        backtest_report,
        walk_forward_report,
        backtest_summary,
    ]


all_assets = build_assets(Settings.from_env())
all_checks: list = []  # quality checks are declared on the assets themselves (see checks.py)

__all__ = ["all_assets", "all_checks", "build_assets", "market_assets"]
