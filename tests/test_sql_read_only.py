"""`kimp sql` cannot write: every writing statement is refused and the store and instance stay byte-identical."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from kimp.storage import ParquetStore
from kimp.storage.sql import ReadOnlyError, query_csv
from kimp_pipelines.cli import main


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def stored(kimp_env: Path) -> Path:
    store = ParquetStore(str(kimp_env / "store"))
    store.write("kimchi_premium", "2024-01-01", pl.DataFrame({"coin": ["BTC"], "premium_fx": [0.01]}))
    store.write(
        "kimchi_premium", "2024-01-02", pl.DataFrame({"coin": ["ETH"], "premium_fx": [0.03], "x": [1]})
    )
    history = kimp_env / "dagster" / "history"
    history.mkdir(parents=True)
    (history / "runs.db").write_bytes(b"SQLite format 3\x00 stands in for the instance")
    return kimp_env


def test_queries_read_every_partition(stored: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["sql", "SELECT coin, premium_fx, x FROM kimchi_premium ORDER BY coin"])
    assert out.exit_code == 0, out.output
    assert out.output == "coin,premium_fx,x\nBTC,0.01,\nETH,0.03,1\n"  # columns unified across partitions
    for query in (
        "DESCRIBE kimchi_premium",
        "SUMMARIZE kimchi_premium",
        "SHOW TABLES",
        "FROM kimchi_premium",
        "WITH t AS (SELECT * FROM kimchi_premium) SELECT count(*) FROM t",
        "PIVOT kimchi_premium ON coin USING sum(premium_fx)",
        "EXPLAIN SELECT * FROM kimchi_premium",
        "SELECT typeof(premium_fx) FROM kimchi_premium LIMIT 1",
    ):
        result = runner.invoke(main, ["sql", query])
        assert result.exit_code == 0, (query, result.output)


WRITES = [
    # COPY over a stored partition, or over the Dagster instance's database
    "COPY (SELECT 1 AS a) TO '{store}/kimchi_premium/2024-01-01.parquet' (FORMAT parquet)",
    "COPY kimchi_premium TO '{home}/dagster/history/runs.db' (FORMAT csv)",
    "COPY kimchi_premium TO '{home}/new.csv'",
    "SELECT 1; COPY kimchi_premium TO '{home}/second.csv'",
    "EXPORT DATABASE '{home}/export'",
    "ATTACH '{home}/dagster/history/runs.db' AS runs",
    "ATTACH '{home}/fresh.duckdb' AS fresh",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL sqlite",
    "SET enable_external_access = true",
    "SET allowed_directories = ['{home}']",
    "RESET lock_configuration",
    "PRAGMA enable_profiling = 'json'",
    "PRAGMA profile_output = '{home}/profile.json'",
    "CALL enable_logging(storage = 'file', storage_path = '{home}/log')",
    "CREATE TABLE t AS SELECT 1",
    "CREATE OR REPLACE VIEW kimchi_premium AS SELECT 1",
    "EXPLAIN ANALYZE COPY kimchi_premium TO '{home}/explained.csv'",
    "IMPORT DATABASE '{home}/export'",
    "DETACH memory",
]

# Queries whose statement type is SELECT but that try to reach files or change settings: the engine itself
# has no file access and a locked configuration.
ENGINE_REFUSED = [
    "SELECT * FROM read_parquet('{store}/kimchi_premium/*.parquet')",
    "SELECT * FROM read_text('{home}/dagster/history/runs.db')",
    "SELECT * FROM glob('{home}/*')",
    "SELECT * FROM enable_logging(storage = 'file', storage_path = '{home}/log')",
    "SELECT * FROM enable_profiling()",
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('COPY kimchi_premium TO ''{home}/j.csv'''))",
]


@pytest.mark.parametrize("template", WRITES)
def test_writing_statements_are_refused(stored: Path, template: str) -> None:
    before = _tree(stored)
    query = template.format(store=stored / "store", home=stored)
    result = CliRunner().invoke(main, ["sql", query])
    assert result.exit_code == 1, result.output
    assert "kimp sql is read-only" in result.output and "statement is refused" in result.output
    assert _tree(stored) == before  # byte-identical, nothing added


@pytest.mark.parametrize("template", ENGINE_REFUSED)
def test_file_access_from_queries_is_refused_by_the_engine(stored: Path, template: str) -> None:
    before = _tree(stored)
    result = CliRunner().invoke(main, ["sql", template.format(store=stored / "store", home=stored)])
    assert result.exit_code == 1, result.output
    assert "read-only" in result.output or "locked" in result.output or "Only SELECT" in result.output
    assert _tree(stored) == before


def test_engine_refuses_writes_even_without_the_statement_check(stored: Path) -> None:
    """The second layer alone: DuckDB as kimp opens it cannot write, whatever reaches it."""
    import duckdb

    from kimp.storage.sql import connect

    before = _tree(stored)
    target = stored / "store" / "kimchi_premium" / "2024-01-01.parquet"
    with connect(ParquetStore(str(stored / "store"))) as con:
        for statement in (
            f"COPY kimchi_premium TO '{target}' (FORMAT parquet)",
            f"EXPORT DATABASE '{stored}/export'",
            f"ATTACH '{stored}/x.duckdb' AS x",
            "INSTALL httpfs",
            "SET enable_external_access = true",
        ):
            with pytest.raises((duckdb.PermissionException, duckdb.InvalidInputException)):
                con.execute(statement)
    assert _tree(stored) == before


def test_library_call_raises_read_only_error(stored: Path) -> None:
    with pytest.raises(ReadOnlyError, match="COPY statement is refused"):
        query_csv(ParquetStore(str(stored / "store")), "COPY kimchi_premium TO 'x.csv'")
