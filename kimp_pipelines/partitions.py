"""kimp's partitions, built once per Definitions from the settings: UTC days from ``settings.start_date``
(KIMP_START_DATE), and for backtest reports the same days crossed with the market scenarios of PRD 5.2."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DailyPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

from kimp.settings import Settings

# Kept equal to kimp.backtest.SCENARIOS (a test asserts it) without importing the backtest engine here.
SCENARIOS: tuple[str, ...] = ("normal", "high_volatility", "flash_crash", "low_liquidity")


@dataclass(frozen=True)
class Partitions:
    """The partitions definitions every asset, job and schedule of one Definitions shares."""

    daily: DailyPartitionsDefinition
    daily_scenario: MultiPartitionsDefinition

    @classmethod
    def from_settings(cls, settings: Settings) -> Partitions:
        daily = DailyPartitionsDefinition(
            start_date=settings.start_date.isoformat(), timezone="UTC", fmt="%Y-%m-%d"
        )
        scenarios = StaticPartitionsDefinition(list(SCENARIOS))
        return cls(
            daily=daily, daily_scenario=MultiPartitionsDefinition({"date": daily, "scenario": scenarios})
        )
