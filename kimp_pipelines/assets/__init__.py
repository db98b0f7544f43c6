"""All assets and asset checks of kimp."""

from kimp_pipelines.assets.market_data import raw_assets
from kimp_pipelines.assets.premium import kimchi_premium

all_assets = [*raw_assets, kimchi_premium]
all_checks: list = []  # quality checks are declared on the assets themselves (see checks.py)

__all__ = ["all_assets", "all_checks"]
