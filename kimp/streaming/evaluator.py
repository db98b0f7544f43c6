"""The catalog's own expressions evaluated on the newest rows of a coin's base frame.

The streaming engine must give, bar for bar, the value of the batch ``features`` asset. It therefore
never re-implements a feature: it asks the same registry (``kimp.features.build.build_registry``) for the
same polars expressions, with the same warm-up masks, Float32 cast and finite rule, and evaluates them on
a tail of the base frame just long enough for each feature. Every feature is windowed (a value at bar t
depends on the bars of its declared look-back only, which tests/test_features_honesty.py proves), so the
last row of a tail of ``look-back / interval + 2`` bars equals the batch value. History is measured by the
base frame's ``_hist_s`` column (from the first bar of the whole history), so the warm-up masks agree too.

Features are grouped by the tail they need (a few buckets), each group compiled once (its helper columns
in dependency order) and evaluated with one ``select`` per bar. GARCH is the one recursive family whose
parameters come from a fit window longer than its filter: the registry's parameter cache
(``Registry.garch_fitted``) is filled on the first bar of each refit block from a long tail, and the
filter then runs on ``window_days`` of bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from kimp.features.build import build_registry, feature_expr, helper_levels, needed_helpers
from kimp.features.types import FeatureConfig, FeatureSpec

DAY_S = 86_400
# Upper bounds (in bars) of the tail buckets; a feature goes to the first bucket that holds its look-back.
_BUCKET_DAYS = (1 / 24, 1 / 6, 1 + 1 / 24, 2, 3 + 1 / 24, 8, 10**6)


def is_garch(spec: FeatureSpec) -> bool:
    return spec.params.get("model") == "garch11"


@dataclass
class _Group:
    rows: int  # tail length in bars (0 = the whole base frame)
    index: np.ndarray  # positions of its features in the catalog
    exprs: list[pl.Expr]
    levels: list[list[pl.Expr]]  # helper columns, level by level


class TailEvaluator:
    """Every catalog feature of one coin at the newest bar of a base frame (kimp.features.inputs)."""

    def __init__(self, config: FeatureConfig, interval_s: int) -> None:
        self.config = config
        self.interval_s = interval_s
        self.reg = build_registry(config, interval_s)
        self.specs = list(self.reg.specs)
        self.names = tuple(s.name for s in self.specs)
        self.unavailable: dict[str, str] = {}  # feature -> why the interval cannot express it
        # history_s=0: every feature keeps its warm-up mask (the tail's first row has little history)
        self._exprs = [
            feature_expr(s, m, self.unavailable, 0.0)
            for s, m in zip(self.specs, self.reg.makers, strict=True)
        ]
        self.tick_mask = np.array([s.refresh == "tick" for s in self.specs])
        self._garch_window = max(1, config.garch_window_days * DAY_S // interval_s)
        self._bar_groups = self._compile(range(len(self.specs)))
        self._tick_groups = self._compile(np.flatnonzero(self.tick_mask))
        self._garch_series = sorted({s.name.split("_garch_")[0] for s in self.specs if is_garch(s)})

    # ------------------------------------------------------------------ compilation
    def rows_needed(self, spec: FeatureSpec) -> int:
        """Bars in the tail that hold the feature's look-back: from the bar whose close starts the
        look-back to the newest bar, plus one (a 1-bar change at the tail's first bar)."""
        if is_garch(spec):
            return self._garch_window + 3  # the filter's window of returns before the bar (parameters cached)
        return int(spec.lookback.total_seconds()) // self.interval_s + 2

    def _compile(self, positions) -> list[_Group]:
        bounds = [max(2, int(d * DAY_S) // self.interval_s + 2) for d in _BUCKET_DAYS]
        by_bound: dict[tuple[int, bool], list[int]] = {}
        for i in positions:
            spec = self.specs[i]
            need = self.rows_needed(spec)
            bound = next(b for b in bounds if need <= b)
            by_bound.setdefault((bound, is_garch(spec)), []).append(int(i))
        groups = []
        for (bound, _garch), idx in sorted(by_bound.items()):
            exprs = [self._exprs[i] for i in idx]
            needed = needed_helpers(exprs, self.reg.helpers)
            pending = {n: e for n, e in self.reg.helpers.items() if n in needed}
            levels = [[pending[n].alias(n) for n in level] for level in helper_levels(pending)]
            rows = bound if bound < bounds[-1] else 0
            groups.append(_Group(rows=rows, index=np.array(idx), exprs=exprs, levels=levels))
        return groups

    # ------------------------------------------------------------------ evaluation
    def prime_garch(self, newest: datetime, history_start: datetime) -> bool:
        """Whether the GARCH group needs the long tail at ``newest`` (its refit block's parameters are not
        cached yet). A block whose fit window starts before the history will never be fitted: it is cached
        as unfittable, exactly as the batch build finds it (no parameters, null features)."""
        block_us = self.config.garch_refit_days * DAY_S * 1_000_000
        fit_us = self.config.garch_fit_days * DAY_S * 1_000_000
        ts_us = int(newest.timestamp() * 1_000_000)
        b0 = ts_us // block_us * block_us
        if int(history_start.timestamp() * 1_000_000) > b0 - fit_us:
            for s in self._garch_series:
                self.reg.garch_fitted.setdefault(s, {}).setdefault(b0, None)
        return any(b0 not in self.reg.garch_fitted.get(s, {}) for s in self._garch_series)

    def evaluate(
        self, base: pl.DataFrame, *, tick: bool = False, history_start: datetime | None = None
    ) -> np.ndarray:
        """Values (float64, NaN = null) at the last row of ``base`` of every feature, or of the tick-level
        ones only (the others NaN) when ``tick``."""
        out = np.full(len(self.specs), np.nan)
        n = base.height
        if n == 0:
            return out
        long_garch = False
        if self._garch_series and not tick:
            newest = base["ts"][-1]
            long_garch = self.prime_garch(newest, history_start or base["ts"][0])
        for group in self._tick_groups if tick else self._bar_groups:
            rows = group.rows
            if is_garch(self.specs[group.index[0]]) and long_garch:
                rows = 0
            tail = base if rows == 0 or rows >= n else base.slice(n - rows, rows)
            self.reg.cache.clear()  # GARCH arrays of the previous tail must not be reused
            for level in group.levels:
                tail = tail.with_columns(level)
            last = tail.select(group.exprs).tail(1)
            values = last.to_numpy().astype(np.float64, copy=False).reshape(-1)
            out[group.index] = values
        out[~np.isfinite(out)] = np.nan  # the batch build's finite rule: no +-inf or NaN value
        return out
