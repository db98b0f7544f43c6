"""Blocking data-quality checks, declared on each asset and run inside it, before anything is written.

Each asset declares one ``AssetCheckSpec`` per rule (schema, timestamps, gaps, prices/values, ...) and
runs them with Great Expectations on the frame it is about to store. All results are reported (the UI
shows them on the asset, with the failed expectations and offending rows); if any fails, the asset
raises instead of emitting its output, so:
- the last good partition is never overwritten by data that fails its checks,
- the assets downstream do not run, and the run (and ``kimp materialize``) fails.
"""

from collections.abc import Iterator
from datetime import date
from typing import Any

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    DailyPartitionsDefinition,
    Failure,
    MetadataValue,
)

from kimp.errors import MarketDataError
from kimp.quality import CHECKS, CheckOutcome, QualityConfig, validate
from kimp.quality.suites import DESCRIPTIONS, rows_markdown


def check_specs(asset_name: str, table: str, partitions: DailyPartitionsDefinition) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            name=check,
            asset=asset_name,
            description=DESCRIPTIONS[check],
            blocking=True,
            partitions_def=partitions,  # results recorded per day (Dagster preview API)
        )
        for check in CHECKS[table]
    ]


def outcome_metadata(outcome: CheckOutcome, day: date) -> dict[str, Any]:
    meta: dict[str, Any] = {"rows": outcome.row_count, "partition": str(day)}
    if outcome.notes:
        meta["measured"] = MetadataValue.md("\n".join(f"- {n}" for n in outcome.notes))
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


def source_failure(exc: MarketDataError) -> Failure:
    """A source's or computation's MarketDataError as a Dagster Failure: the one-paragraph description the
    CLI prints, and the offending rows as a table in the UI (the exception stays chained for -v)."""
    meta: dict[str, Any] = {"source": exc.source, "problem": exc.problem, "expected": exc.expected}
    if isinstance(exc.rows, pl.DataFrame) and exc.rows.height:
        meta["offending rows"] = MetadataValue.md(rows_markdown(exc.rows))
    return Failure(description=exc.paragraph(), metadata=meta)


def run_checks(
    context: Any,
    asset_name: str,
    table: str,
    frame: pl.DataFrame,
    day: date,
    config: QualityConfig,
    stored: pl.DataFrame | None = None,
    source: str | None = None,
) -> Iterator[AssetCheckResult]:
    """Yield one result per rule; raise ``Failure`` (after yielding them all) if any failed.

    ``stored``: the partition the output would replace, if any (the floor of the 'coverage' check)."""
    outcomes = validate(table, frame, day=day, config=config, stored=stored)
    failed = [o for o in outcomes.values() if not o.passed]
    for check, outcome in outcomes.items():
        yield AssetCheckResult(
            check_name=check,
            passed=outcome.passed,
            severity=AssetCheckSeverity.ERROR,
            description=None if outcome.passed else outcome.summary(),
            metadata=outcome_metadata(outcome, day) | ({"source": source} if source else {}),
        )
    if failed:
        summary = "\n\n".join(o.summary() for o in failed)
        context.log.error(f"{asset_name} {day}: blocking checks failed, nothing written:\n{summary}")
        raise Failure(
            description=f"{asset_name} {day}: {len(failed)} blocking check(s) failed "
            f"({', '.join(o.check for o in failed)}); the stored partition was left as it was.\n{summary}",
            metadata={"failed_checks": ", ".join(o.check for o in failed)},
        )
