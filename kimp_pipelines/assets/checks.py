"""Blocking data-quality checks: one Dagster check per (asset, rule), run by Great Expectations.

Each check is partitioned like its asset, so it validates exactly the day that was just written. A
failed check fails its step: the assets downstream do not run and the run (and ``kimp materialize``)
fails. Its metadata lists each failed expectation and the offending rows.
"""

import inspect
from typing import Any

import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetKey,
    MetadataValue,
    asset_check,
)

from kimp.quality import CHECKS, CheckOutcome, validate
from kimp.quality.suites import DESCRIPTIONS, rows_markdown
from kimp.timeutil import parse_day
from kimp_pipelines.partitions import daily_partitions
from kimp_pipelines.resources.quality import QualityResource

# asset name -> the quality rules (kimp.quality.suites.RULES) it is held to
CHECKED_ASSETS: dict[str, str] = {
    "upbit_candles": "candles",
    "bithumb_candles": "candles",
    "binance_candles": "candles",
    "fx_usdkrw": "fx",
    "orderbook_snapshots": "orderbook",
    "onchain_metrics": "onchain",
    "macro_daily": "macro",
    "news_headlines": "news",
    "kimchi_premium": "kimchi_premium",
}


def outcome_metadata(outcome: CheckOutcome, day: object) -> dict[str, Any]:
    meta: dict[str, Any] = {"rows": outcome.row_count, "partition": str(day)}
    if not outcome.passed:
        lines = [f"**{outcome.summary().splitlines()[0]}**", ""]
        for f in outcome.failures:
            n = f" — {f.unexpected_count} rows" if f.unexpected_count is not None else ""
            lines.append(f"- `{f.expectation}`{n}")
            if f.rows is not None:
                lines += ["", rows_markdown(f.rows), ""]
            elif f.detail:
                lines.append(f"  {f.detail}")
        meta["failures"] = MetadataValue.md("\n".join(lines))
    return meta


def _check(asset_name: str, table: str, check: str) -> AssetChecksDefinition:
    def _run(context: AssetCheckExecutionContext, quality: QualityResource, **inputs: pl.DataFrame) -> AssetCheckResult:
        frame = inputs[asset_name]
        day = parse_day(context.partition_key)
        outcome = validate(table, frame, day=day, checks=(check,), config=quality.config())[check]
        if not outcome.passed:
            context.log.error(f"{asset_name} {day}: {outcome.summary()}")
        return AssetCheckResult(
            passed=outcome.passed,
            severity=AssetCheckSeverity.ERROR,
            description=None if outcome.passed else outcome.summary(),
            metadata=outcome_metadata(outcome, day),
        )

    # Dagster passes the checked asset to the parameter named after it; the factory names it here.
    param = inspect.Parameter
    _run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            param("context", param.POSITIONAL_OR_KEYWORD, annotation=AssetCheckExecutionContext),
            param("quality", param.POSITIONAL_OR_KEYWORD, annotation=QualityResource),
            param(asset_name, param.POSITIONAL_OR_KEYWORD, annotation=pl.DataFrame),
        ]
    )
    return asset_check(
        asset=AssetKey(asset_name),
        name=check,
        description=DESCRIPTIONS[check],
        blocking=True,
        partitions_def=daily_partitions,
    )(_run)


quality_checks = [
    _check(asset_name, table, check) for asset_name, table in CHECKED_ASSETS.items() for check in CHECKS[table]
]
