"""Feature store (temporary docstring)."""

from kimp.features.build import build_features, catalog, catalog_frame, feature_set_version, lookback_days
from kimp.features.types import FeatureConfig, FeatureInputs, FeatureResult, FeatureSpec

__all__ = [
    "FeatureConfig",
    "FeatureInputs",
    "FeatureResult",
    "FeatureSpec",
    "build_features",
    "catalog",
    "catalog_frame",
    "feature_set_version",
    "lookback_days",
]
