"""Materialize ranges of daily partitions through Dagster on the configured instance (used by the CLI).

Stage by stage (market data, features, training, backtests), and within a stage one run per day in date
order, so that every look-back input exists before the days that need it. Runs execute in process (fast
on two cores) as runs of the ``kimp`` code location (kimp_pipelines.launch), so the UI shows them in its
timeline and under their jobs, like runs launched from the UI.

**Reuse** (``reuse=True``: ``kimp walk-forward`` and ``kimp backtest`` unless ``--recompute``): a market-data
or features run of a day is skipped when every asset of it is already stored from the same code version and
inputs. What Dagster's event log records decides it (:class:`StoredPartitions`): the partition's latest
materialization was committed (its run succeeded), the run that made it carries the same ``kimp/inputs``
tag (a hash of the assets' code versions, e.g. the feature-set hash, and, for market data, of the source:
kind, seed, order-book interval, data folder and the size and modification time of every file in it), and
it is newer than the latest materialization of every upstream partition it reads (its look-back included).
Anything else (never stored, stored by other code or from other inputs, an input re-materialized since, a
file missing from the store) runs again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterEventType,
    DagsterRunStatus,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)
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
# Stages whose stored partitions a range reuses (reuse=True) when their code version and inputs are unchanged.
REUSABLE_STAGES: tuple[str, ...] = ("market_data_job", "features_job")
# Run tag: the fingerprint of the code versions and inputs a run of a reusable stage computed from.
INPUTS_TAG = "kimp/inputs"
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


def source_signature(settings: Settings) -> dict[str, Any]:
    """What the market-data assets' output depends on besides their code: the source and its inputs."""
    sig: dict[str, Any] = {"source": settings.source, "data_dir": settings.data_dir}
    if settings.source == "simulated":
        sig |= {"seed": settings.seed, "orderbook_interval_ms": settings.orderbook_interval_ms}
    if settings.source == "exchange":
        sig["news_feeds"] = list(settings.sentiment.news_feeds)
    if settings.data_dir and "://" not in settings.data_dir and Path(settings.data_dir).is_dir():
        root = Path(settings.data_dir)
        files = hashlib.sha1()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            st = path.stat()
            files.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        sig["files"] = files.hexdigest()
    return sig


def inputs_fingerprint(settings: Settings, job: object, graph: Any) -> str:
    """The ``kimp/inputs`` tag of a reusable stage's runs: the code version of every asset of the job (the
    feature-set hash for the features) and, for market data, the source's signature."""
    keys = sorted(job.asset_layer.executable_asset_keys, key=str)  # type: ignore[attr-defined]
    parts: dict[str, Any] = {
        "job": job.name,  # type: ignore[attr-defined]
        "code_versions": {k.to_user_string(): graph.get(k).code_version for k in keys},
    }
    if job.name == MAIN_JOB:  # type: ignore[attr-defined]
        parts["source"] = source_signature(settings)
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StoredPartitions:
    """What the instance's event log and the store say about stored partitions: whether a run of a reusable
    stage can be skipped (module docstring). Latest materializations are cached per asset partition and
    forgotten for the partitions a run materializes."""

    def __init__(self, instance: Any, graph: Any, store: ParquetStore) -> None:
        self.instance, self.graph, self.store = instance, graph, store
        self._latest: dict[tuple[AssetKey, str], tuple[int, str] | None] = {}
        self._runs: dict[str, Any] = {}

    def latest(self, key: AssetKey, partitions: list[str]) -> dict[str, tuple[int, str]]:
        """partition -> (storage id, run id) of its latest materialization, for those materialized."""
        todo = [p for p in partitions if (key, p) not in self._latest]
        if todo:
            found: dict[str, tuple[int, str]] = {}
            cursor = None
            while True:
                result = self.instance.fetch_materializations(
                    AssetRecordsFilter(asset_key=key, asset_partitions=todo), limit=500, cursor=cursor
                )
                for record in result.records:  # newest first: the first one seen per partition is the latest
                    part = record.partition_key
                    if part is not None and part not in found:
                        found[part] = (record.storage_id, record.run_id)
                if len(found) == len(todo) or not result.has_more:
                    break
                cursor = result.cursor
            for p in todo:
                self._latest[(key, p)] = found.get(p)
        return {p: v for p in partitions if (v := self._latest[(key, p)]) is not None}

    def forget(self, keys: list[AssetKey], partition: str) -> None:
        for key in keys:
            self._latest.pop((key, partition), None)

    def _run(self, run_id: str) -> Any:
        if run_id not in self._runs:
            self._runs[run_id] = self.instance.get_run_by_id(run_id)
        return self._runs[run_id]

    def reusable(self, keys: list[AssetKey], partition: str, fingerprint: str) -> bool:
        """Whether every asset of ``keys`` is stored for ``partition`` from runs with this fingerprint, committed,
        and newer than every upstream partition it reads."""
        for key in keys:
            if not self.store.exists("__".join(key.path), partition):
                return False
            latest = self.latest(key, [partition]).get(partition)
            if latest is None:
                return False
            storage_id, run_id = latest
            run = self._run(run_id)
            if run is None or run.tags.get(INPUTS_TAG) != fingerprint:
                return False
            if run.tags.get(COMMIT_TAG) == COMMIT_ON_SUCCESS and run.status != DagsterRunStatus.SUCCESS:
                return False  # its outputs were discarded: the stored file is an older run's
            for parent in self.graph.get(key).parent_keys:
                if not self.graph.get(parent).is_partitioned:
                    continue
                upstream = self.graph.get_parent_partition_keys_for_child(partition, parent, key)
                parts = list(upstream.partitions_subset.get_partition_keys())
                if any(sid > storage_id for sid, _ in self.latest(parent, parts).values()):
                    return False  # an input was materialized again since
        return True


@dataclass
class RangeOutcome:
    days: int = 0
    runs: list[str] = field(default_factory=list)
    materializations: int = 0
    checks_passed: int = 0
    problems: list[str] = field(default_factory=list)  # one paragraph per failed run
    warnings: list[str] = field(default_factory=list)
    # stage -> (runs skipped because everything was stored, runs planned), for the reusable stages
    reused: dict[str, list[int]] = field(default_factory=dict)
    reused_partitions: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "done" if self.ok else f"FAILED ({len(self.problems)} problem(s))"
        return (
            f"{state}: {self.days} day(s), {len(self.runs)} run(s), {self.materializations} asset partitions "
            f"materialized, {self.checks_passed} checks passed"
        )

    def reuse_summary(self) -> str | None:
        """E.g. 'reused 9 of 9 market-data days and 7 of 7 feature days (63 asset partitions)'."""
        if not self.reused:
            return None
        names = {"market_data_job": "market-data", "features_job": "feature"}
        parts = [
            f"{n} of {total} {names.get(stage, stage)} days" for stage, (n, total) in self.reused.items()
        ]
        return (
            f"reused {' and '.join(parts)} ({self.reused_partitions} asset partitions) already stored from the "
            "same code version and inputs"
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
    reuse: bool = False,
) -> RangeOutcome:
    """Materialize ``days`` of the given stages (jobs), or of whichever stages hold the ``select``ed assets.

    ``days`` may name different days per stage (a walk-forward needs features for its training window
    before the first predicted day); ``run_configs`` adds run config per job (e.g. a report's range) and
    ``stage_select`` narrows one job to some of its assets. ``reuse`` skips the market-data and features
    runs whose partitions are stored from the same code version and inputs (module docstring).
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
    # (job name, job, day, assets or None for all, checks, FX warm-up run: only planned when not stored)
    plan: list[tuple[str, object, date, list | None, list | None, bool]] = []
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
                (name, job, d, a, c, True)
                for d, a, c in _fx_warmup(settings, stage_days[0], valid_days, graph)
            ]
        plan += [(name, job, d, run_assets, run_checks, False) for d in stage_days]
    outcome = RangeOutcome(days=len(all_days))
    store = ParquetStore(settings.storage_uri)
    stored = StoredPartitions(instance, graph, store)
    fingerprints = {
        name: inputs_fingerprint(settings, defs.resolve_job_def(name), graph)
        for name in stage_names
        if name in REUSABLE_STAGES
    }
    bar = tqdm(plan, unit="run", disable=not progress, desc="materialize")
    for name, job, day, run_assets, run_checks, warmup in bar:
        bar.set_postfix_str(f"{name.removesuffix('_job')} {day}")
        fingerprint = fingerprints.get(name)
        if fingerprint is not None:
            keys = run_assets or sorted(job.asset_layer.executable_asset_keys, key=str)  # type: ignore[attr-defined]
            counts = outcome.reused.setdefault(name, [0, 0]) if reuse and not warmup else None
            if counts is not None:
                counts[1] += 1
                if day.isoformat() in valid_days and stored.reusable(keys, day.isoformat(), fingerprint):
                    counts[0] += 1
                    outcome.reused_partitions += len(keys)
                    continue
            stored.forget(keys, day.isoformat())
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
                {INPUTS_TAG: fingerprint} if fingerprint else {},
            )
    return outcome


def _discard_dead_stages(instance: object, store: ParquetStore) -> None:
    """Drop outputs staged by runs that will never commit them (killed, crashed, or already failed)."""
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
    extra_tags: dict[str, str],
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
        tags={"kimp/launched_by": "cli", COMMIT_TAG: COMMIT_ON_SUCCESS, **process_tag(), **extra_tags},
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
