"""Thresholds of the blocking data-quality checks, as a resource so that they show in the UI."""

from __future__ import annotations

from dagster import ConfigurableResource

from kimp.quality import QualityConfig


class QualityResource(ConfigurableResource):
    max_gap_minutes: int
    max_fx_age_hours: int
    # Accept a partition holding less than the stored one (kimp materialize --allow-shrink; in the UI's
    # launchpad: resources.quality.config.allow_shrink: true).
    allow_shrink: bool = False

    def config(self) -> QualityConfig:
        return QualityConfig(
            max_gap_s=self.max_gap_minutes * 60,
            max_fx_age_s=self.max_fx_age_hours * 3600,
            allow_shrink=self.allow_shrink,
        )
