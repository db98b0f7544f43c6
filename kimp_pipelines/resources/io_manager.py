"""Dagster IO manager over :class:`kimp.storage.ParquetStore`: one Parquet file per asset partition.

Runs tagged ``kimp/commit=on-success`` (every run of the ``kimp`` command) write all or nothing: outputs are
staged under the run's id and read back from there by the run's later steps; the runner commits them once the
run has succeeded, or discards them, so a failing run never replaces any stored partition (of any asset of the
day: candles, FX and premium alike). Other runs (UI, schedules, backfills) write each output when its step
succeeds, after that asset's blocking checks passed.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from dagster import ConfigurableIOManager, InputContext, OutputContext
from dagster._core.errors import DagsterInvariantViolationError

from kimp.storage import ParquetStore

# Set on an AssetIn's metadata when an input spans a look-back window whose older partitions may
# legitimately be absent (e.g. USD/KRW before the first materialized day).
ALLOW_MISSING = "allow_missing_partitions"
# Run tag: stage the run's outputs and write them only when the whole run succeeds.
COMMIT_TAG = "kimp/commit"
COMMIT_ON_SUCCESS = "on-success"


def table_name(context: InputContext | OutputContext) -> str:
    return "__".join(context.asset_key.path)


def partition_file(key: str) -> str:
    """File name of a partition key: a (date, scenario) key "2024-03-01|flash_crash" becomes
    "2024-03-01__flash_crash", so a table's files still sort by day and glob as ``*.parquet``."""
    return str(key).replace("|", "__")


def _stage(context: InputContext | OutputContext) -> str | None:
    """The run id when the run stages its outputs, else None."""
    try:
        step = context.step_context
    except DagsterInvariantViolationError:  # a context built by hand, outside a run
        return None
    return step.run_id if step.run_tags.get(COMMIT_TAG) == COMMIT_ON_SUCCESS else None


class ParquetIOManager(ConfigurableIOManager):
    """Writes each partition atomically under ``base_uri`` (a local folder or ``s3://bucket/prefix``)."""

    base_uri: str

    def _store(self) -> ParquetStore:
        return ParquetStore(self.base_uri)

    def handle_output(self, context: OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        partition = partition_file(context.asset_partition_key) if context.has_asset_partitions else None
        store, stage = self._store(), _stage(context)
        store.write(table_name(context), partition, obj, stage=stage)
        meta: dict[str, Any] = {"path": store.path(table_name(context), partition)}
        if stage:
            meta["written"] = "when the run succeeds (staged until then)"
        context.add_output_metadata(meta)

    def load_input(self, context: InputContext) -> pl.DataFrame:
        store, stage = self._store(), _stage(context)
        table = table_name(context)
        if not context.has_asset_partitions:
            return store.read(table, None, stage if stage and store.exists(table, None, stage) else None)
        keys = [partition_file(k) for k in context.asset_partition_keys]
        staged = {k for k in keys if stage and store.exists(table, k, stage)}
        present = [k for k in keys if k in staged or store.exists(table, k)]
        missing = [k for k in keys if k not in present]
        if missing:
            allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING, False))
            if not allow_missing:
                raise FileNotFoundError(
                    f"table {table!r}: partitions {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                    f"are not materialized under {store.base_uri}; materialize them first "
                    "(kimp materialize --start ... --end ...)"
                )
            # Informational: the premium's fx_freshness check fails if a bar really lacks FX.
            context.log.info(f"{table}: look-back partitions {missing} are not materialized; using {present}")
            if not present:
                return pl.DataFrame()
        frames = [store.read(table, k, stage if k in staged else None) for k in present]
        return pl.concat(frames, how="vertical_relaxed")

    def stored(self, table: str, partition: str | None) -> pl.DataFrame | None:
        """The stored (committed) partition, or None when there is none."""
        store = self._store()
        return store.read(table, partition) if store.exists(table, partition) else None


def stored_output(context: Any) -> pl.DataFrame | None:
    """The stored partition that the asset's output would replace (None when there is none).

    Read through the asset's own IO manager, so the comparison is with exactly the file a write would
    replace."""
    io_manager = getattr(context.resources, "io_manager", None)
    if not isinstance(io_manager, ParquetIOManager):
        raise TypeError(
            f"{context.asset_key.to_user_string()}: the 'coverage' check compares with the stored partition "
            f"and needs kimp's ParquetIOManager as io_manager (got {type(io_manager).__name__})"
        )
    key = partition_file(context.partition_key) if context.has_partition_key else None
    return io_manager.stored("__".join(context.asset_key.path), key)
