"""A failing day is one clear paragraph without -v (source, file, line, column, value, partition, expected),
never a stack trace; -v keeps Dagster's logs and traces."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from kimp.errors import MarketDataError
from kimp_pipelines.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "real_hourly"
DAY = "2018-01-10"


def test_paragraph_names_file_line_column_value_partition_and_expectation() -> None:
    err = MarketDataError(
        source="files",
        partition=DAY,
        problem="file bithumb_BTCKRW_1h.csv: 2 unparseable number(s)",
        expected="plain decimal numbers",
        rows=pl.DataFrame({"line": [245, 300], "column": ["close", "low"], "value": ["2191x000.0", "1,2"]}),
    )
    assert err.paragraph(max_rows=1) == (
        "[files] partition 2018-01-10: file bithumb_BTCKRW_1h.csv: 2 unparseable number(s) (line 245, "
        "column 'close', value '2191x000.0'; 1 more row(s)). Expected: plain decimal numbers."
    )


@pytest.fixture
def damaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real-format fixture with one unparseable close in Bithumb BTC on DAY."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    path = data / "bithumb_BTCKRW_1h.csv"
    lines = path.read_text().splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if line.startswith(f"{DAY}T05"))
    cells = lines[row].split(",")
    cells[4] = cells[4][:3] + "x" + cells[4][4:]  # close: 21910000.0 -> 219x0000.0
    lines[row] = ",".join(cells)
    path.write_text("".join(lines))
    monkeypatch.setenv("KIMP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KIMP_SOURCE", "files")
    monkeypatch.setenv("KIMP_DATA_DIR", str(data))
    (tmp_path / "line").write_text(f"{row + 1}|{cells[4]}")
    return tmp_path


def test_a_failing_day_is_one_paragraph_without_a_trace(damaged: Path) -> None:
    line, value = (damaged / "line").read_text().split("|")
    args = ["materialize", "--start", DAY, "--end", DAY, "--select", "bithumb_candles"]
    quiet = CliRunner().invoke(main, args)
    assert quiet.exit_code == 1
    out = quiet.output
    assert "Traceback" not in out and "Stack Trace" not in out and 'File "' not in out, out
    paragraphs = [p for p in out.split("\n\n")[1:] if p.strip()]
    assert len(paragraphs) == 1, out
    text = " ".join(paragraphs[0].split())
    for expected in (
        f"{DAY}: bithumb_candles: [files] partition {DAY}",
        "file bithumb_BTCKRW_1h.csv",
        f"line {line}, column 'close', value '{value}'",
        "Expected: plain decimal numbers",
        "Nothing of this run was written",
    ):
        assert expected in text, (expected, text)

    verbose = CliRunner().invoke(main, ["-v", *args])
    assert verbose.exit_code == 1
    assert "Stack Trace" in verbose.output or "Traceback" in verbose.output
