"""Materialize ranges of daily partitions through Dagster on the configured instance (used by the CLI).

One run per day, in process (fast on two cores; the runs still land in the instance, so the UI shows
them), in date order so that look-back inputs (USD/KRW) exist before the days that need them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from dagster import AssetKey, AssetSelection, DagsterEventType
from dagster._core.errors import DagsterInvalidSubsetError
from tqdm import tqdm

from kimp.settings import Settings
from kimp.storage import ParquetStore
from kimp_pipelines.instance import get_instance

MAIN_JOB = "market_data_job"
PREMIUM = AssetKey("kimchi_premium")
FX = AssetKey("fx_usdkrw")


def _fx_warmup(
    settings: Settings, start: date, valid: set[str], graph: object
) -> list[tuple[date, list, list]]:
    """USD/KRW partitions the premium's look-back needs before ``start`` and that are not stored yet.

    A bar uses the latest FX published by its close, which on a Monday after a daily FX close is
    Friday's value: without these partitions the first days of a range fail the FX freshness check.
    """
    from kimp_pipelines.assets.premium import FX_LOOKBACK_DAYS

    store = ParquetStore(settings.storage_uri)
    checks = sorted(AssetSelection.checks_for_assets(FX).resolve_checks(graph), key=str)  # type: ignore[arg-type]
    days = [start - timedelta(days=n) for n in range(FX_LOOKBACK_DAYS, 0, -1)]
    return [
        (d, [FX], checks)
        for d in days
        if d.isoformat() in valid and not store.exists("fx_usdkrw", d.isoformat())
    ]


@dataclass
class RangeOutcome:
    days: int = 0
    runs: list[str] = field(default_factory=list)
    materializations: int = 0
    checks_passed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "done" if self.ok else f"FAILED ({len(self.problems)} problem(s))"
        return (
            f"{state}: {self.days} day(s), {len(self.runs)} run(s), {self.materializations} asset partitions "
            f"materialized, {self.checks_passed} checks passed"
        )


def materialize_range(
    settings: Settings,
    days: list[date],
    select: str | None = None,
    *,
    progress: bool = True,
    log_level: str = "WARNING",
) -> RangeOutcome:
    instance = get_instance(settings)
    from kimp_pipelines.definitions import build_definitions

    defs = build_definitions(settings)

    job = defs.resolve_job_def(MAIN_JOB)
    graph = defs.resolve_asset_graph()
    asset_keys = None
    check_keys = None
    if select:
        try:
            asset_keys = sorted(AssetSelection.from_string(select).resolve(graph), key=str)
        except DagsterInvalidSubsetError as exc:
            known = ", ".join(sorted(k.to_user_string() for k in graph.get_all_asset_keys()))
            raise ValueError(f"--select {select!r}: {exc}. Assets: {known}") from None
        if not asset_keys:
            raise ValueError(f"--select {select!r} matches no asset")
        check_keys = sorted(AssetSelection.checks_for_assets(*asset_keys).resolve_checks(graph), key=str)
    partitions = job.partitions_def
    valid = set(partitions.get_partition_keys(dynamic_partitions_store=instance)) if partitions else set()
    outcome = RangeOutcome(days=len(days))
    plan = [(day, asset_keys, check_keys) for day in days]
    # The simulated market publishes USD/KRW every minute, so every bar finds its FX inside its own day;
    # daily FX (files, exchange) needs the days before the range.
    if days and settings.source != "simulated" and (asset_keys is None or PREMIUM in asset_keys):
        plan = _fx_warmup(settings, days[0], valid, graph) + plan
    bar = tqdm(plan, unit="run", disable=not progress, desc="materialize")
    for day, run_assets, run_checks in bar:
        key = day.isoformat()
        known_problems = len(outcome.problems)
        bar.set_postfix_str(key)
        if key not in valid:
            outcome.problems.append(
                f"{key}: not a partition (partitions run from KIMP_START_DATE={settings.start_date} to yesterday)"
            )
            continue
        subset = (
            job
            if run_assets is None
            else job.get_subset(asset_selection=set(run_assets), asset_check_selection=set(run_checks or []))
        )
        result = subset.execute_in_process(
            partition_key=key,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            tags={"kimp/launched_by": "cli"},
        )
        outcome.runs.append(result.run_id)
        events = result.all_events
        outcome.materializations += sum(
            1 for e in events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
        )
        for evaluation in result.get_asset_check_evaluations():
            if evaluation.passed:
                outcome.checks_passed += 1
            else:
                outcome.problems.append(
                    f"{key}: check {evaluation.asset_key.to_user_string()}.{evaluation.check_name} failed: "
                    f"{evaluation.description or ''}".strip()
                )
        for event in events:
            if event.event_type == DagsterEventType.STEP_FAILURE:
                err = event.step_failure_data.error
                message = err.cause.message if err and err.cause else (err.message if err else "")
                # first line only: a failed blocking check's rows are already listed above
                outcome.problems.append(
                    f"{key}: step {event.step_key} failed: {message.strip().splitlines()[0]}"
                )
        if not result.success and len(outcome.problems) == known_problems:
            outcome.problems.append(f"{key}: run {result.run_id} failed")
        if progress:
            what = "all assets" if run_assets is None else ", ".join(k.to_user_string() for k in run_assets)
            tqdm.write(f"{key}: run {result.run_id[:8]} {'ok' if result.success else 'FAILED'} ({what})")
    return outcome
