"""Materialize ranges of daily partitions through Dagster on the configured instance (used by the CLI).

Stage by stage (market data, features, training, backtests), and within a stage one run per day in date
order, so that every look-back input exists before the days that need it. Runs execute in process (fast
on two cores) as runs of the ``kimp`` code location (kimp_pipelines.launch), so the UI shows them in its
timeline and under their jobs, like runs launched from the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from dagster import AssetKey, AssetSelection, DagsterEventType, MultiPartitionKey, MultiPartitionsDefinition
from dagster._core.definitions.asset_selection import DagsterInvalidAssetSelectionError
from dagster._core.errors import DagsterInvalidSubsetError
from tqdm import tqdm

from kimp.settings import Settings
from kimp.storage import ParquetStore
from kimp_pipelines.instance import get_instance, process_tag
from kimp_pipelines.launch import execute_in_process
from kimp_pipelines.partitions import Partitions
from kimp_pipelines.resources.io_manager import COMMIT_ON_SUCCESS, COMMIT_TAG

MAIN_JOB = "market_data_job"
# Jobs in dependency order; a range runs them stage by stage.
STAGES: tuple[str, ...] = (
    "market_data_job",
    "features_job",
    "tuning_job",
    "training_job",
    "agents_job",
    "backtest_job",
    "reports_job",
)
DEFAULT_STAGES: tuple[str, ...] = ("market_data_job", "features_job")
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
    problems: list[str] = field(default_factory=list)  # one paragraph per failed run
    warnings: list[str] = field(default_factory=list)

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
    days: list[date] | dict[str, list[date]],
    select: str | None = None,
    *,
    stages: tuple[str, ...] | None = None,
    run_configs: dict[str, dict] | None = None,
    stage_select: dict[str, str] | None = None,
    progress: bool = True,
    log_level: str = "WARNING",
) -> RangeOutcome:
    """Materialize ``days`` of the given stages (jobs), or of whichever stages hold the ``select``ed assets.

    ``days`` may name different days per stage (a walk-forward needs features for its training window
    before the first predicted day); ``run_configs`` adds run config per job (e.g. a report's range) and
    ``stage_select`` narrows one job to some of its assets.
    """
    instance = get_instance(settings)
    _discard_dead_stages(instance, ParquetStore(settings.storage_uri))
    from kimp_pipelines.definitions import build_definitions

    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    # Every job's days are the one daily partitioning (the backtests' date dimension included).
    valid_days = set(Partitions.from_settings(settings).daily.get_partition_keys())
    selected: set[AssetKey] | None = None
    if select:
        try:
            selected = set(AssetSelection.from_string(select).resolve(graph))
        except (DagsterInvalidSubsetError, DagsterInvalidAssetSelectionError) as exc:
            known = ", ".join(sorted(k.to_user_string() for k in graph.get_all_asset_keys()))
            raise ValueError(f"--select {select!r}: {exc}. Assets: {known}") from None
        if not selected:
            raise ValueError(f"--select {select!r} matches no asset")
    stage_names = stages or (STAGES if selected else DEFAULT_STAGES)
    plan: list[tuple[str, object, date, list | None, list | None]] = []
    all_days = sorted({d for ds in (days.values() if isinstance(days, dict) else [days]) for d in ds})
    for name in stage_names:
        job = defs.resolve_job_def(name)
        job_keys = set(job.asset_layer.executable_asset_keys)
        run_assets = run_checks = None
        narrowed = selected
        if stage_select and name in stage_select:
            narrowed = set(AssetSelection.from_string(stage_select[name]).resolve(graph))
        if narrowed is not None:
            chosen = job_keys & narrowed
            if not chosen:
                continue
            run_assets = sorted(chosen, key=str)
            run_checks = sorted(AssetSelection.checks_for_assets(*run_assets).resolve_checks(graph), key=str)
        stage_days = days.get(name, []) if isinstance(days, dict) else days
        if (
            name == MAIN_JOB
            and stage_days
            and settings.source != "simulated"
            and (run_assets is None or PREMIUM in run_assets)
        ):
            # The simulated market publishes USD/KRW every minute; daily FX (files, exchange) needs the
            # days before the range.
            plan += [
                (name, job, d, a, c) for d, a, c in _fx_warmup(settings, stage_days[0], valid_days, graph)
            ]
        plan += [(name, job, d, run_assets, run_checks) for d in stage_days]
    outcome = RangeOutcome(days=len(all_days))
    bar = tqdm(plan, unit="run", disable=not progress, desc="materialize")
    for name, job, day, run_assets, run_checks in bar:
        bar.set_postfix_str(f"{name.removesuffix('_job')} {day}")
        for key in _partition_keys(job, day):
            extra = (run_configs or {}).get(name, {})
            _run_one(
                instance,
                job,
                key,
                run_assets,
                run_checks,
                outcome,
                log_level,
                progress,
                settings,
                extra,
                valid_days,
            )
    return outcome


def _discard_dead_stages(instance: object, store: ParquetStore) -> None:
    """Drop outputs staged by runs that will never commit them (killed, crashed, or already failed)."""
    from dagster import DagsterRunStatus

    live = {DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED}
    for stage in store.stages():
        run = instance.get_run_by_id(stage)  # type: ignore[attr-defined]
        if run is None or run.status not in live:
            store.discard(stage)


def _partition_keys(job: object, day: date) -> list[str | None]:
    """The job's partitions for ``day``: the day itself, one per scenario for (date, scenario) jobs, or
    none for the unpartitioned range reports."""
    partitions = job.partitions_def  # type: ignore[attr-defined]
    if partitions is None:
        return [None]
    if isinstance(partitions, MultiPartitionsDefinition):
        other = next(d for d in partitions.partitions_defs if d.name != "date")
        return [
            MultiPartitionKey({"date": day.isoformat(), other.name: k})
            for k in other.partitions_def.get_partition_keys()
        ]
    return [day.isoformat()]


def _run_one(
    instance: object,
    job: object,
    key: str | None,
    run_assets: list | None,
    run_checks: list | None,
    outcome: RangeOutcome,
    log_level: str,
    progress: bool,
    settings: Settings,
    extra_config: dict,
    valid_days: set[str],
) -> None:
    day_key = key.keys_by_dimension["date"] if isinstance(key, MultiPartitionKey) else key
    if day_key is not None and day_key not in valid_days:
        outcome.problems.append(
            f"{day_key}: not a partition (partitions run from KIMP_START_DATE={settings.start_date} to yesterday)"
        )
        return
    subset = (
        job
        if run_assets is None
        else job.get_subset(asset_selection=set(run_assets), asset_check_selection=set(run_checks or []))  # type: ignore[attr-defined]
    )
    # A run of the code location (not an ad-hoc one): the UI lists it in the timeline and under its job.
    # All or nothing: the run's outputs are staged under its id and committed only if the whole run
    # succeeds, so a failing day never replaces any stored partition (candles, FX or premium).
    result = execute_in_process(
        subset,
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}, **extra_config},
        tags={"kimp/launched_by": "cli", COMMIT_TAG: COMMIT_ON_SUCCESS, **process_tag()},
    )
    store = ParquetStore(settings.storage_uri)
    if result.success:
        store.commit(result.run_id)
    else:
        store.discard(result.run_id)
    outcome.runs.append(result.run_id)
    events = result.all_events
    if result.success:  # a failed run's outputs were discarded: nothing of it is stored
        outcome.materializations += sum(
            1 for e in events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
        )
    outcome.checks_passed += sum(1 for e in result.get_asset_check_evaluations() if e.passed)
    if not result.success:
        outcome.problems.append(failure_paragraph(key, result))
    if log_level not in ("DEBUG", "INFO", "WARNING"):  # Dagster's console is quiet: say what it would warn
        outcome.warnings += _run_warnings(instance, key, result.run_id)
    _end_mlflow_run()
    if progress:
        what = "all assets" if run_assets is None else ", ".join(k.to_user_string() for k in run_assets)
        tqdm.write(f"{key}: run {result.run_id[:8]} {'ok' if result.success else 'FAILED'} ({what})")


def failure_paragraph(key: object, result: object) -> str:
    """What went wrong in a failed run, as one paragraph: each failed check (asset, check, source, what was
    found and expected) and each failed step (its error's own paragraph, e.g. file, line, column, value;
    otherwise the error's first line), then what happened to the store."""
    parts = []
    for ev in result.get_asset_check_evaluations():  # type: ignore[attr-defined]
        if ev.passed:
            continue
        meta = ev.metadata or {}
        source = getattr(meta.get("source"), "value", None)
        lines = (ev.description or "").strip().splitlines()
        found = "; ".join(line.removeprefix("- ") for line in lines[1:]) or (lines[0] if lines else "")
        parts.append(
            f"{ev.asset_key.to_user_string()}: check '{ev.check_name}' failed"
            + (f" [{source}]" if source else "")
            + f": {found.rstrip('. ')}."
        )
    for event in result.all_events:  # type: ignore[attr-defined]
        if event.event_type != DagsterEventType.STEP_FAILURE:
            continue
        data = event.step_failure_data
        user = data.user_failure_data
        if user is not None and "failed_checks" in (user.metadata or {}):
            continue  # its blocking checks said it above
        if user is not None and user.description:
            parts.append(f"{event.step_key}: {user.description}")
            continue
        err = data.error.cause if data.error and data.error.cause else data.error
        first = (err.message.strip().splitlines() or [""])[0] if err else "unknown error"
        parts.append(f"{event.step_key}: {first} (kimp -v ... shows the trace).")
    if not parts:
        parts.append(f"run {result.run_id} failed (kimp -v ... shows why).")  # type: ignore[attr-defined]
    return (
        f"{key}: "
        + " ".join(parts)
        + " Nothing of this run was written: the stored partitions are as they were."
    )


def _run_warnings(instance: object, key: object, run_id: str) -> list[str]:
    """The run's own warnings (e.g. a day without candles), which a quiet console does not print."""
    import logging

    out = []
    for entry in instance.all_logs(run_id):  # type: ignore[attr-defined]
        if entry.is_dagster_event or entry.level < logging.WARNING or entry.level >= logging.ERROR:
            continue
        out.append(f"{key}: {entry.user_message}")
    return out


def _end_mlflow_run() -> None:
    """Runs share this process: never let one run's MLflow run stay active into the next."""
    import sys

    if "mlflow" in sys.modules:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run()
