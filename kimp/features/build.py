"""build_features, the catalog and the look-back each input table needs."""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

import polars as pl

from kimp.features.expr import Expr, col, null_column, when
from kimp.features.families.external import add_calendar, add_macro, add_news, add_onchain
from kimp.features.families.microstructure import add_liquidity, add_orderbook, add_volume
from kimp.features.families.premium import add_mean_reversion, add_premium
from kimp.features.families.price import (
    add_garch,
    add_momentum,
    add_returns,
    add_technicals,
    add_volatility,
    add_vwap,
)
from kimp.features.families.sentiment import add_sentiment
from kimp.features.inputs import FX_MAX_AGE, base_frame, ensure_columns, prepare
from kimp.features.registry import NotRepresentable, Registry
from kimp.features.types import TABLE_NAMES, FeatureConfig, FeatureInputs, FeatureResult, FeatureSpec

FAMILY_BUILDERS = (
    add_returns,
    add_volatility,
    add_garch,
    add_momentum,
    add_technicals,
    add_vwap,
    add_premium,
    add_mean_reversion,
    add_orderbook,
    add_liquidity,
    add_volume,
    add_onchain,
    add_macro,
    add_news,
    add_sentiment,
    add_calendar,
)
KEY_COLUMNS = ("ts", "coin", "interval_s")


def build_registry(config: FeatureConfig, interval_s: int | None = None) -> Registry:
    """Every family registered on one Registry (catalog mode without ``interval_s``): the one place that
    decides which features exist, shared by ``build_features`` and the streaming engine."""
    reg = Registry(config, interval_s)
    for add in FAMILY_BUILDERS:
        add(reg)
    names = [s.name for s in reg.specs]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise AssertionError(f"duplicate feature names in the catalog: {dupes}")
    return reg


def catalog(config: FeatureConfig | None = None) -> list[FeatureSpec]:
    """Every feature of ``config``: name, family, params, formula in words, look-back and source tables.

    The catalog does not depend on the bar interval: a timeframe the interval cannot express keeps its
    (null) column, so that every data set yields the same schema.
    """
    return list(build_registry(config or FeatureConfig()).specs)


def catalog_frame(config: FeatureConfig | None = None) -> pl.DataFrame:
    specs = catalog(config)
    return pl.DataFrame(
        {
            "name": [s.name for s in specs],
            "family": [s.family for s in specs],
            "params": [json.dumps(s.params, sort_keys=True) for s in specs],
            "formula": [s.formula for s in specs],
            "lookback_s": [int(s.lookback.total_seconds()) for s in specs],
            "sources": [list(s.sources) for s in specs],
            "refresh": [s.refresh for s in specs],
        },
        schema={
            "name": pl.String,
            "family": pl.String,
            "params": pl.String,
            "formula": pl.String,
            "lookback_s": pl.Int64,
            "sources": pl.List(pl.String),
            "refresh": pl.String,
        },
    )


def feature_set_version(config: FeatureConfig | None = None) -> str:
    """Short stable hash of the catalog (names, params, formulas, look-backs, sources, refresh)."""
    payload = catalog_frame(config).write_json()
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def lookback_days(config: FeatureConfig | None = None) -> dict[str, int]:
    """Whole days of history before ``start`` each input table must cover.

    The premium table is the grid every feature's history is measured on, so it needs the longest
    look-back of all; another table needs the longest look-back of the features that read it, plus the
    staleness an as-of join tolerates (a weekend's FX or macro value is published days earlier).
    """
    config = config or FeatureConfig()
    specs = catalog(config)
    out: dict[str, int] = {}
    for table in TABLE_NAMES:
        seconds = [s.lookback.total_seconds() for s in specs if table in s.sources]
        if table == "premium":
            seconds = [s.lookback.total_seconds() for s in specs]
        days = math.ceil(max(seconds, default=0) / 86_400)
        if table == "fx":
            days = max(days, math.ceil(FX_MAX_AGE.total_seconds() / 86_400))
        if table == "macro":
            days += 1  # the previous observation of the oldest value in use
        out[table] = days
    return out


def _check_window(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"start and end must be timezone-aware UTC datetimes, got {start!r}, {end!r}")
    if end <= start:
        raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")


def root_names(expr: Expr | pl.Expr) -> list[str]:
    """The columns an expression reads."""
    if isinstance(expr, pl.Expr):
        return expr.meta.root_names()
    out: list[str] = []
    todo, seen = [expr], set()
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if e.op == "col":
            out.append(e.kw["name"])
        todo.extend(e.args)
    return out


def lowered(expr: Expr | pl.Expr) -> pl.Expr:
    """The polars expression the batch build evaluates (a feature Expr lowered, a polars one as is)."""
    return expr.to_polars() if isinstance(expr, Expr) else expr


def helper_levels(helpers: dict[str, Expr | pl.Expr]) -> list[list[str]]:
    """Group helper columns so that each group reads only base columns and earlier groups."""
    level: dict[str, int] = {}
    for name, expr in helpers.items():  # registration order is a topological order
        deps = [level[r] for r in root_names(expr) if r in level]
        level[name] = 1 + max(deps, default=-1)
    groups: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name, lvl in level.items():
        groups[lvl].append(name)
    return groups


# Helpers read by several families stay until the coin is done; the others are dropped after their family.
_SHARED_HELPERS = ("_lr1_", "_bvc_")


def needed_helpers(exprs: list[Expr | pl.Expr], helpers: dict[str, Expr | pl.Expr]) -> set[str]:
    """The helper columns ``exprs`` read, directly or through other helpers."""
    needed: set[str] = set()
    todo = [r for e in exprs for r in root_names(e) if r in helpers]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(r for r in root_names(helpers[name]) if r in helpers)
    return needed


def feature_definition(
    spec: FeatureSpec, make: Callable[[], Expr | pl.Expr | None], marks: dict[str, str], history_s: float
) -> Expr | pl.Expr:
    """The feature as the registry defines it: null where the interval cannot express it (reason in
    ``marks``), masked to null on rows with less history than its look-back unless every row has
    ``history_s``, cast to Float32. A feature Expr (kimp.features.expr) stays one, so that the streaming
    engine compiles the very definition the batch build lowers to polars."""
    try:
        expr = make()
    except NotRepresentable as err:
        marks.setdefault(spec.name, str(err))
        expr = None
    if expr is None:  # a column of nulls as long as the frame (a bare literal would broadcast to 1 row)
        expr = null_column()
    lb = int(spec.lookback.total_seconds())
    if isinstance(expr, pl.Expr):
        if lb > history_s:
            expr = pl.when(pl.col("_hist_s") >= lb).then(expr)
        return expr.cast(pl.Float32)
    if lb > history_s:  # warm-up: rows with less history on the grid than declared are null
        expr = when(col("_hist_s") >= lb).then(expr)
    return expr.cast(pl.Float32)


def feature_expr(
    spec: FeatureSpec, make: Callable[[], Expr | pl.Expr | None], marks: dict[str, str], history_s: float
) -> pl.Expr:
    """The polars expression of ``feature_definition``, named after the feature."""
    return lowered(feature_definition(spec, make, marks, history_s)).alias(spec.name)


def _coin_frame(reg: Registry, base: pl.DataFrame, marks: dict[str, str], start: datetime) -> pl.DataFrame:
    """All features of one coin, family by family.

    Eager on purpose: planning one lazy query of ~650 deep expressions costs seconds, and polars does
    not share repeated sub-expressions here, so every intermediate used twice is a helper column,
    materialized once before its family and dropped after it (memory stays bounded for a year).
    """
    frame = base
    columns: list[pl.Series] = [base["ts"]]
    # history of the first row that is kept: a feature whose look-back it covers needs no warm-up mask
    kept = base.filter(pl.col("ts") >= start)["_hist_s"]
    history_s = float(kept.min()) if kept.len() else float("inf")  # type: ignore[arg-type]
    specs, makers = reg.specs, reg.makers
    i = 0
    while i < len(specs):
        j = i
        while j < len(specs) and specs[j].family == specs[i].family:
            j += 1
        exprs = [feature_expr(specs[k], makers[k], marks, history_s) for k in range(i, j)]
        needed = needed_helpers(exprs, reg.helpers) - set(frame.columns)
        pending = {n: e for n, e in reg.helpers.items() if n in needed}
        for level in helper_levels(pending):
            frame = frame.with_columns([lowered(pending[n]).alias(n) for n in level])
        names = [s.name for s in specs[i:j]]
        part = frame.select(exprs)
        # division by zero and logs of zero make +-inf/NaN; no feature may carry them (documented rule)
        counts = part.select((~pl.col(names).is_finite()).sum()).row(0, named=True)
        bad = [c for c, n in counts.items() if n]
        if bad:
            part = part.with_columns(pl.when(pl.col(bad).is_finite()).then(pl.col(bad)).name.keep())
        columns.extend(part.get_columns())
        frame = frame.drop([n for n in needed if not n.startswith(_SHARED_HELPERS)])
        i = j
    return pl.DataFrame(columns)


def build_features(
    inputs: FeatureInputs, *, start: datetime, end: datetime, config: FeatureConfig | None = None
) -> FeatureResult:
    """Features for every bar with ``start <= ts < end``, one row per (coin, bar) of the premium grid.

    ``inputs`` should hold ``lookback_days(config)`` of history before ``start``; rows with less history
    than a feature's look-back are null for that feature. Data known after a bar's close never reaches
    it, and data after ``end`` never changes the result.
    """
    config = config or FeatureConfig()
    _check_window(start, end)
    prep = prepare(inputs, start=start, end=end, config=config)
    marks: dict[str, str] = {}  # feature -> why it is null
    frames: list[pl.DataFrame] = []
    venues: dict[str, str] = {}
    names: list[str] = []
    specs: list[FeatureSpec] = []
    for coin in sorted(config.coins):  # sorted, so the concatenation is already ordered by (coin, ts)
        base, venues[coin] = base_frame(prep, coin, end=end, config=config)
        reg = build_registry(config, prep.interval_s)
        specs = reg.specs
        names = [s.name for s in specs]
        frame = _coin_frame(reg, ensure_columns(base), marks, start)
        del base
        # the grid is regular, sorted and ends before `end`: the window is a zero-copy tail slice
        first = int(frame["ts"].search_sorted(start, side="left")) if frame.height else 0
        frame = frame.slice(first)
        frames.append(frame.with_columns(coin=pl.lit(coin), interval_s=pl.lit(prep.interval_s, pl.Int32)))
    out = pl.concat(frames, how="vertical", rechunk=False).select(*KEY_COLUMNS, *names)
    unavailable = _unavailable(specs, out, prep.unusable, marks)
    return FeatureResult(
        frame=out,
        unavailable=unavailable,
        interval_s=prep.interval_s,
        kr_venue=venues,
        input_problems=prep.problems,
    )


def _unavailable(
    specs: list[FeatureSpec], frame: pl.DataFrame, unusable: dict[str, str], marks: dict[str, str]
) -> dict[str, str]:
    """family (or family/timeframe) -> why its columns are null."""
    reasons: dict[str, str] = dict(marks)
    for spec in specs:
        bad = [unusable[t] for t in spec.sources if t in unusable]
        if bad and spec.name not in reasons:
            reasons[spec.name] = "; ".join(bad)
    if frame.height:
        counts = frame.select(pl.col([s.name for s in specs]).is_not_null().sum()).row(0, named=True)
    else:
        counts = {s.name: 0 for s in specs}
    by_family: dict[str, list[FeatureSpec]] = defaultdict(list)
    for spec in specs:
        by_family[spec.family].append(spec)
    out: dict[str, str] = {}
    for family, members in by_family.items():
        explained = [s for s in members if s.name in reasons]
        if explained and len(explained) == len(members):
            out[family] = "; ".join(sorted({reasons[s.name] for s in members}))
            continue
        groups: dict[str, set[str]] = defaultdict(set)
        for s in explained:
            tag = str(s.params.get("timeframe") or s.params.get("window") or s.name)
            groups[f"{family}/{tag}"].add(reasons[s.name])
        out.update({k: "; ".join(sorted(v)) for k, v in groups.items()})
        if all(counts[s.name] == 0 for s in members) and family not in out:
            lb = max(s.lookback for s in members)
            tables = sorted({t for s in members for t in s.sources}) or ["timestamps"]
            out[family] = (
                f"no values in the window: the inputs hold no usable rows of {', '.join(tables)} for it, "
                f"or less history than its look-back (up to {lb})"
            )
    return out
