"""The registry ties each catalog entry to the expression that computes it, so they cannot drift apart.

Family modules call ``reg.add(...)`` once per feature with its spec and a zero-argument function that
builds the polars expression; the catalog only reads the specs, ``build_features`` also builds the
expressions. A window that the bar interval cannot express (finer than a bar, or not a whole number
of bars) makes ``make`` return None: the column is null and the reason is recorded per family and
timeframe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import polars as pl

from kimp.features.expr import Expr
from kimp.features.garch import GarchParams
from kimp.features.types import FeatureConfig, FeatureSpec

Maker = Callable[[], Expr | pl.Expr | None]

# Families refreshed on every order-book snapshot by the streaming engine (FeatureSpec.refresh): each of
# their features reads only closes, premiums, FX and the latest book, never a bar's volume, high or low
# (a feature that does passes refresh="bar"; tests/test_streaming_engine.py checks the rule).
TICK_FAMILIES = frozenset({"returns", "premium", "mean_reversion", "orderbook"})
REFRESH_KINDS = ("tick", "bar")


def duration_label(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class NotRepresentable(Exception):
    """A window that the bar interval cannot express."""


class Registry:
    def __init__(self, config: FeatureConfig, interval_s: int | None = None) -> None:
        self.config = config
        self.interval_s = interval_s
        self.specs: list[FeatureSpec] = []
        self.makers: list[Maker] = []
        self.helpers: dict[str, Expr | pl.Expr] = {}  # in registration order, which is dependency order
        self.cache: dict[str, dict[str, np.ndarray]] = {}  # results shared by helper columns (GARCH)
        # GARCH parameters per series and refit block, kept across evaluations (see garch.py)
        self.garch_fitted: dict[str, dict[int, GarchParams | None]] = {}
        self.lock = threading.Lock()

    @property
    def max_lookback_s(self) -> int:
        return self.config.max_lookback_days * 86_400

    def fits(self, lookback_s: int) -> bool:
        """Whether a feature needing this much history is part of the catalog."""
        return lookback_s <= self.max_lookback_s

    def bars(self, seconds: int) -> int:
        """Rows spanned by a window of ``seconds`` on the regular grid; raises if not representable."""
        iv = self.interval_s
        if iv is None:
            raise RuntimeError("bars() needs the bar interval (catalog mode builds no expressions)")
        if seconds < iv or seconds % iv:
            raise NotRepresentable(f"window {duration_label(seconds)} is not a whole number of {iv} s bars")
        return seconds // iv

    def add(
        self,
        name: str,
        family: str,
        formula: str,
        *,
        lookback_s: int,
        sources: tuple[str, ...],
        make: Maker,
        refresh: str | None = None,
        **params: object,
    ) -> None:
        if not self.fits(lookback_s):
            return
        refresh = refresh or ("tick" if family in TICK_FAMILIES else "bar")
        if refresh not in REFRESH_KINDS:
            raise ValueError(f"{name}: refresh must be one of {REFRESH_KINDS}, got {refresh!r}")
        self.specs.append(
            FeatureSpec(
                name=name,
                family=family,
                params=dict(params),
                formula=formula,
                lookback=timedelta(seconds=lookback_s),
                sources=sources,
                refresh=refresh,
            )
        )
        self.makers.append(make)

    def helper(self, name: str, make: Maker) -> str:
        """A shared intermediate column (computed once, dropped from the result).

        ``make`` runs now, so a helper it reads is registered before it, and a window the interval
        cannot express raises NotRepresentable into the feature that asked for it.
        """
        if name not in self.helpers:
            expr = make()
            if expr is None:
                raise NotRepresentable(f"helper {name} cannot be computed")
            self.helpers[name] = expr
        return name
