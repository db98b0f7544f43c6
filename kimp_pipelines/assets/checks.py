"""Blocking data-quality checks, one Dagster check per (asset, rule), run by Great Expectations.

A failed check stops the assets downstream in the same run and its metadata lists the failed
expectations and the offending rows.
"""


from collections.abc import Iterable

import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetChecksDefinition,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from kimp.quality import CHECKS, validate
from kimp.quality.suites import DESCRIPTIONS, rows_markdown
from kimp.timeutil import parse_day
from kimp_pipelines.resources.quality import QualityResource

# asset name -> quality table rules
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


def _checks_for(asset_name: str, table: str) -> AssetChecksDefinition:
    key = AssetKey(asset_name)
    specs = [
        AssetCheckSpec(name=check, asset=key, description=DESCRIPTIONS[check], blocking=True)
        for check in CHECKS[table]
    ]

    @multi_asset_check(specs=specs, name=f"{asset_name}_quality", ins={"frame": key})
    def _quality(
        context: AssetCheckExecutionContext, frame: pl.DataFrame, quality: QualityResource
    ) -> Iterable[AssetCheckResult]:
        day = parse_day(context.partition_key) if context.has_partition_key else None
        outcomes = validate(table, frame, day=day, config=quality.config())
        for check, outcome in outcomes.items():
            meta: dict[str, object] = {"rows": outcome.row_count, "partition": str(day)}
            if not outcome.passed:
                lines = [f"**{outcome.summary().splitlines()[0]}**", ""]
                for f in outcome.failures:
                    n = f" — {f.unexpected_count} rows" if f.unexpected_count is not None else ""
                    lines.append(f"- `{f.expectation}`{n}: {f.detail[:300]}")
                    if f.rows is not None:
                        lines += ["", rows_markdown(f.rows), ""]
                meta["failures"] = MetadataValue.md("\n".join(lines))
                context.log.error(f"{asset_name} {day}: {outcome.summary()}")
            yield AssetCheckResult(
                asset_key=key,
                check_name=check,
                passed=outcome.passed,
                severity=AssetCheckSeverity.ERROR,
                description=outcome.summary() if not outcome.passed else None,
                metadata=meta,
            )

    return _quality


quality_checks = [_checks_for(name, table) for name, table in CHECKED_ASSETS.items()]
