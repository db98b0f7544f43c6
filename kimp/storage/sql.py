"""Read-only DuckDB over the Parquet store: every materialized table is a view named after its asset key.

``kimp sql`` must never be able to change the store, the Dagster instance or any other file, whatever the
query. Two layers make sure of it:

1. The engine cannot touch files at all: DuckDB runs in memory with ``enable_external_access = false``,
   extension installs and auto-loading off, and the configuration locked (``SET``/``PRAGMA`` cannot undo
   it). The tables reach it as Arrow datasets that pyarrow reads (``con.register``), never as paths, so
   ``COPY ... TO``, ``EXPORT``, ``ATTACH``, ``read_*``/file functions and ``INSTALL``/``LOAD`` all fail
   inside DuckDB with a permission error.
2. Before running anything, DuckDB's own parser splits the text into statements and only queries
   (``SELECT``, ``FROM``, ``WITH``, ``VALUES``, ``DESCRIBE``, ``SUMMARIZE``, ``SHOW``, ``PIVOT``,
   ``EXPLAIN``) are accepted, so a writing statement is refused with a message that says why, before the
   engine sees it.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from kimp.storage.parquet_store import ParquetStore

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Statement types that only read. MULTI is what DuckDB's parser makes of a PIVOT whose columns are found
# from the data (an enum type in memory, then a SELECT).
READ_ONLY_STATEMENTS = frozenset({"SELECT", "MULTI"})
_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?(\s*\([^)]*\))?\s+", re.IGNORECASE)


class ReadOnlyError(ValueError):
    """A statement that could write was refused."""


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise ReadOnlyError unless every statement in ``query`` is a query (DuckDB's parser decides)."""
    statements = con.extract_statements(query)
    if not statements:
        raise ReadOnlyError("no statement to run")
    for statement in statements:
        kind = statement.type.name
        text = " ".join(statement.query.split())
        if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: that one must be a query too
            inner = _EXPLAIN.sub("", statement.query, count=1)
            if inner != statement.query:
                check_read_only(con, inner)
                continue
            kind = "EXPLAIN (unrecognised form)"
        if kind not in READ_ONLY_STATEMENTS:
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise ReadOnlyError(
                f"kimp sql is read-only: a {kind} statement is refused ({shown!r}). Only queries run here "
                "(SELECT, FROM, WITH, VALUES, DESCRIBE, SUMMARIZE, SHOW, PIVOT, EXPLAIN); nothing can be "
                "written, attached, exported, installed or configured. To keep a result, redirect the CSV "
                "output: kimp sql '...' > result.csv"
            )


def _dataset(store: ParquetStore, table: str) -> ds.Dataset | None:
    """All partitions of ``table`` as one Arrow dataset (columns unified by name across partitions)."""
    files = sorted(store.fs.glob(f"{store.table_dir(table)}/*.parquet"))
    if not files:
        return None
    fs = pafs.LocalFileSystem() if store.is_local else pafs.PyFileSystem(pafs.FSSpecHandler(store.fs))
    schemas = [pq.read_schema(f, filesystem=fs) for f in files]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return ds.dataset(files, schema=schema, format="parquet", filesystem=fs)


@contextmanager
def connect(store: ParquetStore) -> Iterator[duckdb.DuckDBPyConnection]:
    """A locked-down in-memory DuckDB connection with one view per table, spanning all of its partitions."""
    spill = tempfile.mkdtemp(prefix="kimp-sql-")  # private: big sorts may spill; removed afterwards
    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "temp_directory": spill,
            "lock_configuration": True,
        },
    )
    try:
        for table in store.tables():
            if not _IDENT.match(table):
                continue
            dataset = _dataset(store, table)
            if dataset is not None:
                con.register(table, dataset)
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def query_csv(store: ParquetStore, query: str) -> str:
    """Run the read-only ``query`` and return the result as CSV text (header first).

    Raises ReadOnlyError for a statement that could write, duckdb.Error for any other problem.
    """
    with connect(store) as con:
        check_read_only(con, query)
        rel = con.execute(query)
        columns = [d[0] for d in rel.description] if rel.description else []
        rows = rel.fetchall()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else (v.isoformat() if hasattr(v, "isoformat") else v) for v in row])
    return buf.getvalue()
