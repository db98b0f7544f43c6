"""The backtest resource: which strategies the daily reports run, on what, and where HTML reports go."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource


class BacktestResource(ConfigurableResource):
    """``strategies``: comma-separated ``zscore`` (the rule-based baseline) and/or model names from the
    ``predictions`` asset (``ensemble``, ``xgboost``, ...); a model without predictions for the day is
    skipped and said so. Defaults follow docs/backtesting.md."""

    strategies: str = "zscore,ensemble"
    coins: str = "BTC,ETH"
    kr_venues: str = "upbit,bithumb"
    zscore_window_minutes: int = 240
    entry_z: float = 2.0
    exit_z: float = 0.5
    prediction_threshold: float = 0.1  # the edge p_down - p_up to enter
    prediction_exit_threshold: float | None = None  # the edge below which to leave (None: half the entry)
    prediction_hold_minutes: int | None = None  # shortest holding (None: the predictions' horizon)
    prediction_size_step: float = 0.25  # sizes are multiples of this (0: unrounded)
    seed: int = 7
    report_dir: str

    def strategy_list(self) -> list[str]:
        return [s.strip() for s in self.strategies.split(",") if s.strip()]

    def write_report(self, day: str, scenario: str, html: str) -> Path:
        """Write atomically (temporary file, then rename) so a failed run never leaves half a report."""
        folder = Path(self.report_dir) / day
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{scenario}.html"
        tmp = path.with_suffix(f".html.tmp{os.getpid()}")
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
        return path
