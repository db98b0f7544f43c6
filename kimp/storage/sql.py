"""DuckDB over the Parquet store: every materialized table is a view named after its asset key."""

from __future__ import annotations

import re

import duckdb

from kimp.storage.parquet_store import ParquetStore

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def connect(store: ParquetStore) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table, spanning all of its partitions."""
    con = duckdb.connect(":memory:")
    if store.is_local:
        prefix = ""
    else:
        # DuckDB's own httpfs extension would be downloaded at run time; fsspec (s3fs) is already here.
        con.register_filesystem(store.fs)
        prefix = f"{store.scheme}://"
    for table in store.tables():
        if not _IDENT.match(table):
            continue
        pattern = f"{prefix}{store.table_dir(table)}/*.parquet"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', union_by_name = true)")
    return con


def query_csv(store: ParquetStore, query: str) -> str:
    """Run ``query`` and return the result as CSV text (header first)."""
    import csv
    import io

    con = connect(store)
    try:
        rel = con.execute(query)
        columns = [d[0] for d in rel.description] if rel.description else []
        rows = rel.fetchall()
    finally:
        con.close()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else (v.isoformat() if hasattr(v, "isoformat") else v) for v in row])
    return buf.getvalue()
