"""The backtest resource: which strategies the daily reports run, on what, and where HTML reports go."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from kimp.backtest.daily import DayConfig


class BacktestResource(ConfigurableResource):
    """``strategies``: comma-separated names of the strategy registry (kimp.backtest.strategies:
    ``zscore``, a model's predictions such as ``ensemble`` or ``xgboost``, the agents ``ppo``, ``dqn``,
    ``rl``); a strategy with nothing to act on for the day is skipped and said so. ``params``: JSON
    object of per-strategy parameter overrides (``{"zscore": {"entry_z": 2.5}}``; the defaults are each
    strategy's own). ``carry``: positions carry across days (False: every day starts and ends flat).
    Built from ``Settings.backtest`` (kimp_pipelines.resources)."""

    strategies: str
    coins: str
    kr_venues: str
    params: str = "{}"
    carry: bool = True
    seed: int
    report_dir: str

    def strategy_list(self) -> list[str]:
        return [s.strip() for s in self.strategies.split(",") if s.strip()]

    def day_config(self) -> DayConfig:
        from kimp.backtest.daily import DayConfig

        return DayConfig(
            strategies=tuple(self.strategy_list()),
            coins=tuple(c.strip() for c in self.coins.split(",") if c.strip()),
            kr_venues=tuple(v.strip() for v in self.kr_venues.split(",") if v.strip()),
            params=json.loads(self.params or "{}"),
            seed=self.seed,
            carry=self.carry,
        )

    def write_report(self, day: str, scenario: str, html: str) -> Path:
        """Write atomically (temporary file, then rename) so a failed run never leaves half a report."""
        folder = Path(self.report_dir) / day
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{scenario}.html"
        tmp = path.with_suffix(f".html.tmp{os.getpid()}")
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
        return path
