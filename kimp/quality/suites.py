"""Quality suites: one per (table, check), run through Great Expectations 1.x on a pandas batch.

GX has no group-by, yet raw tables hold several symbols: ordering and gaps are therefore checked on
helper columns derived per group in polars (``_dt_prev_s``: seconds since the previous row of the same
symbol/series; ``_gap_s``: that minus the bar interval), then handed to GX as plain column expectations.
Exact dtypes, including the UTC zone that GX cannot see through pandas, are checked in polars.

Each check returns the failed expectations and the offending rows themselves, so a failed Dagster
check says exactly what failed and where.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

import polars as pl

from kimp.market_data import schemas
from kimp.quality.coverage import incomplete_day, series_coverage, shrinkage
from kimp.timeutil import day_bounds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the blocking checks (env: KIMP_MAX_GAP_MINUTES, KIMP_MAX_FX_AGE_HOURS; --allow-shrink)."""

    max_gap_s: int = 6 * 3600  # a missing stretch longer than this (beyond one bar) fails 'gaps', 'coverage'
    max_fx_age_s: int = 5 * 86400  # weekend + a holiday; older FX fails 'fx_freshness'
    premium_bounds: tuple[float, float] = (-0.25, 0.75)  # real extremes: -6.4% .. +57.6% (2017-2026)
    fx_bounds: tuple[float, float] = (500.0, 3000.0)  # KRW per USD
    max_rows_shown: int = 20
    allow_shrink: bool = False  # accept a partition that holds less than the stored one ('coverage')


@dataclass
class Failure:
    expectation: str
    detail: str
    unexpected_count: int | None = None
    rows: pl.DataFrame | None = None


@dataclass
class CheckOutcome:
    table: str
    check: str
    passed: bool
    description: str
    failures: list[Failure] = field(default_factory=list)
    row_count: int = 0
    notes: list[str] = field(
        default_factory=list
    )  # what was measured (coverage per series), accepted shrinkage

    def summary(self) -> str:
        if self.passed:
            note = f" ({'; '.join(self.notes)})" if self.notes else ""
            return f"{self.table}.{self.check}: passed on {self.row_count} rows{note}"
        lines = [f"{self.table}.{self.check}: FAILED on {self.row_count} rows"]
        for f in self.failures:
            n = f" ({f.unexpected_count} rows)" if f.unexpected_count is not None else ""
            lines.append(f"- {f.expectation}{n}: {f.detail}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Table descriptions: grouping keys and which checks apply
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableRules:
    schema: dict[str, pl.DataType]
    group: tuple[str, ...]  # rows of one group must have unique, strictly increasing ts
    interval: str | int | None  # column holding the bar length, a fixed length, or None (irregular)
    checks: tuple[str, ...]
    strictly_increasing: bool = True


RULES: dict[str, TableRules] = {
    "candles": TableRules(
        schemas.CANDLES,
        ("symbol", "interval_s"),
        "interval_s",
        ("schema", "timestamps", "gaps", "prices", "coverage"),
    ),
    "fx": TableRules(schemas.FX, ("series",), "interval_s", ("schema", "timestamps", "values", "coverage")),
    "orderbook": TableRules(
        schemas.ORDERBOOK, ("venue", "symbol"), None, ("schema", "timestamps", "gaps", "prices", "coverage")
    ),
    "onchain": TableRules(
        schemas.ONCHAIN, ("coin",), 600, ("schema", "timestamps", "gaps", "values", "coverage")
    ),
    "macro": TableRules(schemas.MACRO, ("series",), None, ("schema", "timestamps", "values", "coverage")),
    "news": TableRules(
        schemas.NEWS, (), None, ("schema", "timestamps", "values", "coverage"), strictly_increasing=False
    ),
    "kimchi_premium": TableRules(
        schemas.PREMIUM,
        ("coin", "kr_venue", "interval_s"),
        "interval_s",
        ("schema", "timestamps", "premium_bounds", "fx_freshness"),
    ),
}

CHECKS: dict[str, tuple[str, ...]] = {table: rules.checks for table, rules in RULES.items()}

DESCRIPTIONS = {
    "schema": "columns and dtypes match the documented schema (timestamps timezone-aware UTC)",
    "timestamps": "timestamps unique and strictly increasing per symbol/series, inside the partition day",
    "gaps": "no missing stretch longer than the gap threshold",
    "prices": "prices > 0, OHLC consistent (low <= open, close <= high), volumes >= 0; books not crossed",
    "values": "values present, positive where they must be, published no earlier than observed",
    "premium_bounds": "premiums within plausible bounds",
    "fx_freshness": "every bar with prices has a USD/KRW value published within the freshness limit",
    "coverage": "every series covers the whole day (no stretch over the gap threshold missing at its start or "
    "end) and the partition holds at least the series, rows and hours of the stored one",
}


# ---------------------------------------------------------------------------------------------------
# Great Expectations plumbing (imported lazily: it costs seconds)
# ---------------------------------------------------------------------------------------------------
@cache
def _gx() -> tuple[Any, Any, Any]:
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("kimp")
    return gx, gxe, source


_asset_counter = 0


def _run_expectations(frame: Any, expectations: list[Any], label: str) -> list[tuple[Any, Any]]:
    """``frame`` is the pandas view of the table (converted once per table, not once per rule)."""
    """Validate ``frame`` against GX expectations; returns (expectation, result) pairs."""
    global _asset_counter
    gx, _, source = _gx()
    _asset_counter += 1
    asset = source.add_dataframe_asset(f"{label}_{_asset_counter}")
    batch_def = asset.add_batch_definition_whole_dataframe("whole")
    batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name=f"{label}_{_asset_counter}", expectations=expectations)
    result = batch.validate(
        suite, result_format={"result_format": "COMPLETE", "include_unexpected_rows": False}
    )
    source.delete_asset(asset.name)
    return [(r.expectation_config, r) for r in result.results]


# ---------------------------------------------------------------------------------------------------
# Helper columns
# ---------------------------------------------------------------------------------------------------
def _with_helpers(frame: pl.DataFrame, rules: TableRules, day: date | None) -> pl.DataFrame:
    out = frame.with_row_index("_row")
    if "ts" not in out.columns:
        return out
    over = list(rules.group) or None
    prev = pl.col("ts").shift(1)
    if over:
        prev = prev.over(over)
    out = out.with_columns(_dt_prev_s=(pl.col("ts") - prev).dt.total_seconds())
    if isinstance(rules.interval, str) and rules.interval in out.columns:
        out = out.with_columns(_gap_s=pl.col("_dt_prev_s") - pl.col(rules.interval))
    elif isinstance(rules.interval, int):
        out = out.with_columns(_gap_s=pl.col("_dt_prev_s") - rules.interval)
    else:
        out = out.with_columns(_gap_s=pl.col("_dt_prev_s"))
    if (
        day is not None and out.schema["ts"] == schemas.UTC_TS
    ):  # a wrong dtype is the schema check's to report
        lo, hi = day_bounds(day)
        out = out.with_columns(_in_day=(pl.col("ts") >= lo) & (pl.col("ts") < hi))
    return out


def _expectations(check: str, rules: TableRules, frame: pl.DataFrame, cfg: QualityConfig) -> list[Any]:
    _, gxe, _ = _gx()
    cols = set(frame.columns)
    e: list[Any] = []
    if check == "schema":
        e.append(
            gxe.ExpectTableColumnsToMatchSet(
                column_set=list(rules.schema) + [c for c in cols if c.startswith("_")], exact_match=False
            )
        )
        for col, dtype in rules.schema.items():
            if col in cols and dtype != schemas.UTC_TS:
                e.append(gxe.ExpectColumnValuesToBeOfType(column=col, type_=_pandas_type(dtype)))
    elif check == "timestamps":
        e.append(gxe.ExpectColumnValuesToNotBeNull(column="ts"))
        key = [*rules.group, "ts"]
        if rules.strictly_increasing:
            e.append(
                gxe.ExpectCompoundColumnsToBeUnique(column_list=key)
                if len(key) > 1
                else gxe.ExpectColumnValuesToBeUnique(column="ts")
            )
            e.append(gxe.ExpectColumnValuesToBeBetween(column="_dt_prev_s", min_value=0, strict_min=True))
        else:
            e.append(gxe.ExpectColumnValuesToBeBetween(column="_dt_prev_s", min_value=0))
        if "_in_day" in cols:
            e.append(gxe.ExpectColumnValuesToBeInSet(column="_in_day", value_set=[True]))
    elif check == "gaps":
        e.append(gxe.ExpectColumnValuesToBeBetween(column="_gap_s", max_value=cfg.max_gap_s))
    elif check == "prices" and "open" in cols:
        for c in ("open", "high", "low", "close"):
            e.append(gxe.ExpectColumnValuesToNotBeNull(column=c))
            e.append(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True))
        for a, b in (("high", "open"), ("high", "close"), ("high", "low"), ("open", "low"), ("close", "low")):
            e.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=a, column_B=b, or_equal=True))
        e.append(gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0))
    elif check == "prices":  # order book
        e.append(gxe.ExpectColumnValuesToNotBeNull(column="bid_px_1"))
        e.append(gxe.ExpectColumnValuesToNotBeNull(column="ask_px_1"))
        e.append(gxe.ExpectColumnValuesToBeBetween(column="bid_px_1", min_value=0, strict_min=True))
        e.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="ask_px_1", column_B="bid_px_1"))
        for c in ("bid_sz_1", "ask_sz_1"):
            e.append(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0))
    elif check == "values":
        e.extend(_value_expectations(rules, cols, cfg))
    elif check == "premium_bounds":
        lo, hi = cfg.premium_bounds
        for c in ("premium_fx", "premium_usdt"):
            e.append(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi))
    elif check == "fx_freshness":
        e.append(gxe.ExpectColumnValuesToBeInSet(column="_fx_fresh", value_set=[True]))
    return e


def _value_expectations(rules: TableRules, cols: set[str], cfg: QualityConfig) -> list[Any]:
    _, gxe, _ = _gx()
    e: list[Any] = []
    if "published_at" in cols:
        e.append(gxe.ExpectColumnValuesToNotBeNull(column="published_at"))
        e.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="published_at", column_B="ts", or_equal=True)
        )
    if rules.schema is schemas.FX:
        e.append(gxe.ExpectColumnValuesToNotBeNull(column="close"))
        e.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="close", min_value=cfg.fx_bounds[0], max_value=cfg.fx_bounds[1]
            )
        )
    elif rules.schema is schemas.ONCHAIN:
        for c in (
            "exchange_inflow",
            "exchange_outflow",
            "whale_tx_count",
            "active_addresses",
            "hash_rate",
            "difficulty",
            "mvrv",
            "nvt",
        ):
            e.append(gxe.ExpectColumnValuesToNotBeNull(column=c))
            e.append(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0))
    elif rules.schema is schemas.MACRO:
        e.append(gxe.ExpectColumnValuesToBeInSet(column="series", value_set=list(schemas.MACRO_SERIES)))
        e.append(gxe.ExpectColumnValuesToNotBeNull(column="value"))
    elif rules.schema is schemas.NEWS:
        e.append(gxe.ExpectColumnValuesToNotBeNull(column="headline"))
        e.append(gxe.ExpectColumnValueLengthsToBeBetween(column="headline", min_value=1))
    return e


_PANDAS_TYPES: dict[pl.DataType, str] = {
    pl.String(): "object",
    pl.Boolean(): "bool",
    pl.Float64(): "float64",
    pl.Int64(): "int64",
    pl.Int32(): "int32",
}


def _pandas_type(dtype: pl.DataType) -> str:
    return _PANDAS_TYPES.get(dtype, "object")


# ---------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------
def validate(
    table: str,
    frame: pl.DataFrame,
    *,
    day: date | None = None,
    checks: tuple[str, ...] | None = None,
    config: QualityConfig | None = None,
    stored: pl.DataFrame | None = None,
) -> dict[str, CheckOutcome]:
    """Run the quality checks of ``table`` on one partition and return an outcome per check.

    ``stored``: the partition this one would replace (None when there is none), the floor of 'coverage'.
    """
    cfg = config or QualityConfig()
    rules = RULES[table]
    wanted = checks or rules.checks
    helpers = _with_helpers(frame, rules, day)
    if table == "kimchi_premium":
        helpers = _with_fx_freshness(helpers, cfg)
    outcomes: dict[str, CheckOutcome] = {}
    pandas_view = None
    for check in wanted:
        outcome = CheckOutcome(table, check, True, DESCRIPTIONS[check], row_count=frame.height)
        if check == "coverage":
            _coverage(outcome, rules, frame, day, cfg, stored)
            outcomes[check] = outcome
            continue
        if check == "schema":
            for problem in schemas.schema_problems(frame, rules.schema):
                outcome.failures.append(Failure("schema (exact polars dtypes)", problem))
            if outcome.failures:  # the other expectations would only repeat the problem
                outcome.passed = False
                outcomes[check] = outcome
                continue
        if frame.height > 0:
            expectations = _expectations(check, rules, helpers, cfg)
            if expectations:
                if pandas_view is None:
                    pandas_view = helpers.to_pandas()
                for config_, res in _run_expectations(pandas_view, expectations, f"{table}_{check}"):
                    if not res.success:
                        outcome.failures.append(_failure(config_, res, helpers, cfg))
        outcome.passed = not outcome.failures
        outcomes[check] = outcome
    return outcomes


def _coverage(
    outcome: CheckOutcome,
    rules: TableRules,
    frame: pl.DataFrame,
    day: date | None,
    cfg: QualityConfig,
    stored: pl.DataFrame | None,
) -> None:
    """The coverage rule (kimp.quality.coverage): a whole day per series, and nothing less than stored."""
    new = series_coverage(frame, rules.group, rules.interval)
    outcome.notes = [c.describe() for c in new.values()] or ["no rows"]
    if day is not None:
        short = incomplete_day(new, day, cfg.max_gap_s)
        if short:
            outcome.failures.append(
                Failure(
                    "a whole day per series",
                    f"{'; '.join(short)} (more than the {cfg.max_gap_s // 60} min allowed at a day's start or "
                    "end, KIMP_MAX_GAP_MINUTES)",
                )
            )
    if stored is not None:
        lost = shrinkage(series_coverage(stored, rules.group, rules.interval), new)
        if lost and cfg.allow_shrink:
            outcome.notes.append(
                f"less than the stored partition, accepted (--allow-shrink): {'; '.join(lost)}"
            )
        elif lost:
            outcome.failures.append(
                Failure(
                    "no less than the stored partition",
                    f"the source now has less than the stored partition: {'; '.join(lost)}. The stored file "
                    "is kept; re-run with --allow-shrink to replace it with less",
                )
            )
    outcome.passed = not outcome.failures


def _with_fx_freshness(frame: pl.DataFrame, cfg: QualityConfig) -> pl.DataFrame:
    """A bar with both prices present and not stale must have USD/KRW published within the limit."""
    close = pl.col("ts") + pl.duration(seconds=pl.col("interval_s"))
    needs_fx = pl.col("kr_close").is_not_null() & pl.col("binance_close").is_not_null() & ~pl.col("stale")
    age = (close - pl.col("fx_published_at")).dt.total_seconds()
    fresh = pl.col("fx_published_at").is_not_null() & (age <= cfg.max_fx_age_s)
    return frame.with_columns(_fx_age_s=age, _fx_fresh=~needs_fx | fresh)


_CONTEXT_COLS = ("ts", "venue", "symbol", "series", "coin", "kr_venue", "interval_s")


def _failure(config_: Any, res: Any, frame: pl.DataFrame, cfg: QualityConfig) -> Failure:
    kwargs = {
        k: v for k, v in config_.kwargs.items() if k not in ("result_format", "batch_id") and v is not None
    }
    name = f"{config_.type}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    result = res.result or {}
    idx = result.get("unexpected_index_list")
    rows = None
    count = result.get("unexpected_count")
    if idx:
        flat = [
            i if isinstance(i, int) else next(iter(i.values())) if isinstance(i, dict) else i for i in idx
        ]
        flat = [int(i) for i in flat if isinstance(i, int | float)]
        used = [c for c in _CONTEXT_COLS if c in frame.columns]
        used += [c for c in kwargs.values() if isinstance(c, str) and c in frame.columns and c not in used]
        for key in ("column_list",):
            used += [c for c in kwargs.get(key, []) if c not in used]
        rows = frame.filter(pl.col("_row").is_in(flat[: cfg.max_rows_shown])).select(["_row", *used])
    detail = f"observed {result.get('observed_value')}" if result.get("observed_value") is not None else ""
    if rows is not None:
        detail = "rows " + "; ".join(_describe_row(r) for r in rows.head(5).to_dicts())
    return Failure(name, detail, count, rows)


def _describe_row(row: dict[str, Any]) -> str:
    parts = []
    for k, v in row.items():
        if k == "_row":
            continue
        parts.append(f"{k}={v.isoformat() if hasattr(v, 'isoformat') else v}")
    return f"#{row['_row']} (" + ", ".join(parts) + ")"


def rows_markdown(rows: pl.DataFrame | None, limit: int = 20) -> str:
    """Render offending rows as a markdown table for Dagster metadata."""
    if rows is None or rows.height == 0:
        return ""
    shown = rows.head(limit)
    header = "| " + " | ".join(shown.columns) + " |"
    sep = "|" + "---|" * len(shown.columns)
    body = ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in shown.iter_rows()]
    return "\n".join([header, sep, *body])
