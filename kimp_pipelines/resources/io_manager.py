"""Dagster IO manager over :class:`kimp.storage.ParquetStore`: one Parquet file per asset partition."""

from __future__ import annotations

import polars as pl
from dagster import ConfigurableIOManager, InputContext, OutputContext

from kimp.storage import ParquetStore

# Set on an AssetIn's metadata when an input spans a look-back window whose older partitions may
# legitimately be absent (e.g. USD/KRW before the first materialized day).
ALLOW_MISSING = "allow_missing_partitions"


def table_name(context: InputContext | OutputContext) -> str:
    return "__".join(context.asset_key.path)


def partition_file(key: str) -> str:
    """File name of a partition key: a (date, scenario) key "2024-03-01|flash_crash" becomes
    "2024-03-01__flash_crash", so a table's files still sort by day and glob as ``*.parquet``."""
    return str(key).replace("|", "__")


class ParquetIOManager(ConfigurableIOManager):
    """Writes each partition atomically under ``base_uri`` (a local folder or ``s3://bucket/prefix``)."""

    base_uri: str

    def _store(self) -> ParquetStore:
        return ParquetStore(self.base_uri)

    def handle_output(self, context: OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        partition = partition_file(context.asset_partition_key) if context.has_asset_partitions else None
        path = self._store().write(table_name(context), partition, obj)
        context.add_output_metadata({"path": path})

    def load_input(self, context: InputContext) -> pl.DataFrame:
        store = self._store()
        table = table_name(context)
        if not context.has_asset_partitions:
            return store.read(table, None)
        keys = [partition_file(k) for k in context.asset_partition_keys]
        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING, False))
        if allow_missing:
            present = [k for k in keys if store.exists(table, k)]
            missing = sorted(set(keys) - set(present))
            if missing:
                # Informational: the premium's fx_freshness check fails if a bar really lacks FX.
                context.log.info(
                    f"{table}: look-back partitions {missing} are not materialized; using {present}"
                )
            if not present:
                return pl.DataFrame()
            keys = present
        return store.read_many(table, keys)
