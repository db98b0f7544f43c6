"""kimp's partitions, defined once: UTC days from KIMP_START_DATE (default 2017-08-17), and for backtest
reports the same days crossed with the market scenarios of PRD 5.2."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

from kimp.settings import Settings

daily_partitions = DailyPartitionsDefinition(
    start_date=Settings.from_env().start_date.isoformat(),
    timezone="UTC",
    fmt="%Y-%m-%d",
)

# Kept equal to kimp.backtest.SCENARIOS (a test asserts it) without importing the backtest engine here.
SCENARIOS: tuple[str, ...] = ("normal", "high_volatility", "flash_crash", "low_liquidity")
scenario_partitions = StaticPartitionsDefinition(list(SCENARIOS))
daily_scenario_partitions = MultiPartitionsDefinition(
    {"date": daily_partitions, "scenario": scenario_partitions}
)
