"""All assets and asset checks of kimp."""

from kimp_pipelines.assets.checks import quality_checks
from kimp_pipelines.assets.market_data import raw_assets
from kimp_pipelines.assets.premium import kimchi_premium

all_assets = [*raw_assets, kimchi_premium]
all_checks = [*quality_checks]

__all__ = ["all_assets", "all_checks"]
