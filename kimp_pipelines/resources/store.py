"""Read access to the Parquet store for range reports, which read many stored partitions at once."""

from __future__ import annotations

from dagster import ConfigurableResource

from kimp.storage import ParquetStore


class StoreResource(ConfigurableResource):
    base_uri: str

    def store(self) -> ParquetStore:
        return ParquetStore(self.base_uri)

    def read_range(self, table: str, start: str | None, end: str | None) -> tuple[list[str], object]:
        """Stored daily partitions of ``table`` between ``start`` and ``end`` (inclusive, YYYY-MM-DD; None =
        open), and their concatenation. Partition files named ``day__scenario`` count as that day."""
        import polars as pl

        store = self.store()
        keys = [
            k
            for k in store.partitions(table)
            if (start is None or k[:10] >= start) and (end is None or k[:10] <= end)
        ]
        frame = store.read_many(table, keys) if keys else pl.DataFrame()
        return keys, frame
