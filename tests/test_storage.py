"""Parquet store: layout, round trips, atomic replacement (even when the writer is killed), SQL views."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from kimp.storage import ParquetStore
from kimp.storage.sql import query_csv


def test_round_trip_and_layout(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = store.write("kimchi_premium", "2024-01-02", frame)
    assert path == f"{tmp_path}/kimchi_premium/2024-01-02.parquet"
    assert store.read("kimchi_premium", "2024-01-02").equals(frame)
    assert store.tables() == ["kimchi_premium"]
    assert store.partitions("kimchi_premium") == ["2024-01-02"]


def test_overwrite_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    store.write("t", "2024-01-01", pl.DataFrame({"a": [1]}))
    store.write("t", "2024-01-01", pl.DataFrame({"a": [5, 6]}))
    assert store.read("t", "2024-01-01")["a"].to_list() == [5, 6]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["2024-01-01.parquet"]


def test_failed_write_keeps_previous_partition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ParquetStore(str(tmp_path))
    store.write("t", "2024-01-01", pl.DataFrame({"a": [1, 2, 3]}))

    import kimp.storage.parquet_store as mod

    def broken_write(table, fh, **kwargs):  # type: ignore[no-untyped-def]
        fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(mod.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        store.write("t", "2024-01-01", pl.DataFrame({"a": [9]}))
    monkeypatch.undo()
    assert store.read("t", "2024-01-01")["a"].to_list() == [1, 2, 3]
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["2024-01-01.parquet"]


def test_writer_killed_mid_write_leaves_old_partition_readable(tmp_path: Path) -> None:
    """A real process is SIGKILLed while writing a large partition; readers still see the old file."""
    store = ParquetStore(str(tmp_path))
    old = pl.DataFrame({"a": list(range(10))})
    store.write("t", "2024-01-01", old)
    flag = tmp_path / "writing"
    script = textwrap.dedent(
        f"""
        import polars as pl, pyarrow.parquet as pq, time, pathlib
        import kimp.storage.parquet_store as mod
        real = pq.write_table
        def slow(table, fh, **kw):
            fh.write(b"PAR1" + b"x" * 1_000_000)   # some bytes hit the disk ...
            fh.flush()
            pathlib.Path({str(flag)!r}).touch()
            time.sleep(60)                         # ... and the process dies here
            real(table, fh, **kw)
        mod.pq.write_table = slow
        mod.ParquetStore({str(tmp_path)!r}).write("t", "2024-01-01", pl.DataFrame({{"a": list(range(1_000_000))}}))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    try:
        deadline = time.time() + 60
        while not flag.exists():
            assert proc.poll() is None, "writer exited early"
            assert time.time() < deadline, "writer never started writing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert store.read("t", "2024-01-01").equals(old)
    assert store.partitions("t") == ["2024-01-01"]  # the leftover temp file is invisible to readers
    assert query_csv(store, "SELECT count(*) AS n FROM t") == "n\n10\n"


def test_read_many_missing_partitions(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    store.write("t", "2024-01-02", pl.DataFrame({"a": [1]}))
    with pytest.raises(FileNotFoundError, match="2024-01-01"):
        store.read_many("t", ["2024-01-01", "2024-01-02"])
    assert store.read_many("t", ["2024-01-01", "2024-01-02"], allow_missing=True)["a"].to_list() == [1]


def test_sql_views_span_partitions(tmp_path: Path) -> None:
    store = ParquetStore(str(tmp_path))
    store.write("kimchi_premium", "2024-01-01", pl.DataFrame({"coin": ["BTC"], "premium_fx": [0.01]}))
    store.write(
        "kimchi_premium", "2024-01-02", pl.DataFrame({"coin": ["BTC", "ETH"], "premium_fx": [0.03, 0.02]})
    )
    store.write("fx_usdkrw", "2024-01-01", pl.DataFrame({"close": [1300.0]}))
    out = query_csv(
        store, "SELECT coin, round(sum(premium_fx), 4) AS s FROM kimchi_premium GROUP BY coin ORDER BY coin"
    )
    assert out == "coin,s\nBTC,0.04\nETH,0.02\n"
    assert query_csv(store, "SELECT count(*) AS n FROM fx_usdkrw") == "n\n1\n"
