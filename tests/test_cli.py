"""The `kimp` command: materialize a range on the configured instance, sql over the store, errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from dagster import DagsterInstance, RunsFilter

from kimp_pipelines.cli import main


def test_materialize_then_sql(kimp_env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["materialize", "--start", "2024-01-01", "--end", "2024-01-02", "--select", "fx_usdkrw"]
    )
    assert result.exit_code == 0, result.output
    assert "2 run(s)" in result.output and "6 checks passed" in result.output
    assert sorted(p.name for p in (kimp_env / "store" / "fx_usdkrw").iterdir()) == [
        "2024-01-01.parquet",
        "2024-01-02.parquet",
    ]
    # the runs are in the instance the UI reads
    instance = DagsterInstance.from_config(str(kimp_env / "dagster"))
    assert len(instance.get_runs(RunsFilter(tags={"kimp/launched_by": "cli"}))) == 2
    out = runner.invoke(
        main,
        ["sql", "SELECT count(DISTINCT CAST(ts AS DATE)) AS days, min(close) > 500 AS sane FROM fx_usdkrw"],
    )
    assert out.exit_code == 0, out.output
    assert out.output == "days,sane\n2,True\n"


def test_bad_inputs_exit_non_zero(kimp_env: Path) -> None:
    runner = CliRunner()
    before_start = runner.invoke(
        main, ["materialize", "--start", "2001-01-01", "--end", "2001-01-01", "--select", "fx_usdkrw"]
    )
    assert before_start.exit_code == 1 and "not a partition" in before_start.output
    assert runner.invoke(main, ["materialize", "--start", "2024-13-01", "--end", "2024-01-01"]).exit_code == 2
    nothing = runner.invoke(
        main, ["materialize", "--start", "2024-01-01", "--end", "2024-01-01", "--select", "no_such_asset"]
    )
    assert nothing.exit_code == 1 and "no_such_asset" in nothing.output and "kimchi_premium" in nothing.output
    bad_sql = runner.invoke(main, ["sql", "SELECT * FROM no_such_table"])
    assert bad_sql.exit_code == 1 and "no_such_table" in bad_sql.output


def test_bad_settings_are_named(kimp_env: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KIMP_SOURCE", "carrier-pigeon")
    result = CliRunner().invoke(main, ["sql", "SELECT 1"])
    assert result.exit_code == 1 and "KIMP_SOURCE" in result.output


def test_demo_materializes_everything_and_says_where_to_look(kimp_env: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--start", "2024-03-01", "--end", "2024-03-01"])
    assert result.exit_code == 0, result.output
    assert "9 asset partitions materialized, 33 checks passed" in result.output
    assert "BTC,upbit,2024-03-01,1440," in result.output
    assert str(kimp_env / "store") in result.output and "kimp ui" in result.output


def test_demo_on_real_files_needs_dates(kimp_env: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KIMP_SOURCE", "files")
    monkeypatch.setenv("KIMP_DATA_DIR", str(kimp_env.parent))
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 2 and "--start" in result.output


def test_failed_check_exits_1_and_names_day_check_and_rows(
    kimp_env: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    header = "ts_utc,open,high,low,close,volume_btc,volume_{q}\n"
    kr = [header.format(q="krw")]
    bn = [header.format(q="usdt")]
    for h in range(48):
        ts = f"2018-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z"
        kr.append(f"{ts},16000000,16100000,15900000,16000000,10,160000000\n")
        high = 13000 if h == 30 else 14100  # 2018-01-02 06:00: high below low on Binance
        bn.append(f"{ts},14000,{high},13900,14000,10,140000\n")
    (data / "bithumb_BTCKRW_1h.csv").write_text("".join(kr))
    (data / "binance_BTCUSDT_1h.csv").write_text("".join(bn))
    (data / "USDKRW_daily.csv").write_text(
        "date,close\n2017-12-29,1070.5\n2018-01-01,1068.0\n2018-01-02,1062.1\n"
    )
    monkeypatch.setenv("KIMP_SOURCE", "files")
    monkeypatch.setenv("KIMP_DATA_DIR", str(data))
    result = CliRunner().invoke(main, ["materialize", "--start", "2018-01-01", "--end", "2018-01-02"])
    assert result.exit_code == 1, result.output
    assert "2018-01-02: check binance_candles.prices failed" in result.output
    assert "2018-01-02T06:00:00+00:00" in result.output  # the offending row
    assert "2018-01-01: check" not in result.output  # the good day passed, premium included
    assert (kimp_env / "store" / "kimchi_premium" / "2018-01-01.parquet").exists()
    assert not (kimp_env / "store" / "kimchi_premium" / "2018-01-02.parquet").exists()
