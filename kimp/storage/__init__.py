"""Partitioned Parquet store (local folder or s3://) and the DuckDB views over it."""

from kimp.storage.parquet_store import ParquetStore

__all__ = ["ParquetStore"]
