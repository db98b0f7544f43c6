"""Incomplete input never replaces good data: after a good day is stored, re-runs of `kimp materialize` on
damaged copies of real-format files (tests/fixtures/real_hourly) are refused and every stored file stays
byte-identical (compared by hash); `--allow-shrink` replaces them deliberately."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kimp_pipelines.cli import main

pytestmark = pytest.mark.slow  # end to end through the CLI

FIXTURE = Path(__file__).parent / "fixtures" / "real_hourly"
DAY = "2018-01-10"
# The raw tables of the day (the premium's all-or-nothing is the same mechanism; it would add the FX look-back
# runs to every case).
RAW = "key:*_candles or key:fx_usdkrw"


def _materialize(home: Path, data: Path, *extra: str, select: str = RAW) -> Result:
    env = {"KIMP_HOME": str(home), "KIMP_SOURCE": "files", "KIMP_DATA_DIR": str(data)}
    args = ["materialize", "--start", DAY, "--end", DAY, "--select", select, *extra]
    return CliRunner().invoke(main, args, env=env)


def _hashes(home: Path) -> dict[str, str]:
    store = home / "store"
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.glob("*/*.parquet"))
    }


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KIMP_HOME with DAY (and its FX look-back) stored from the undamaged files."""
    home = tmp_path_factory.mktemp("stored") / "kimp_home"
    result = _materialize(home, FIXTURE)
    assert result.exit_code == 0, result.output
    return home


def _keep(path: Path, keep: Callable[[str], bool]) -> None:
    """Rewrite a csv keeping its header and the data lines for which ``keep(line)`` holds."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "".join(line for line in lines[1:] if keep(line)))


def _cut_bithumb_btc(data: Path) -> None:  # the file ends at 2018-01-10 12:00 (as if a download broke off)
    _keep(data / "bithumb_BTCKRW_1h.csv", lambda line: line < "2018-01-10T12")


def _drop_binance_eth_day(data: Path) -> None:  # one symbol's file lacks the whole day
    _keep(data / "binance_ETHUSDT_1h.csv", lambda line: not line.startswith(DAY))


def _empty_folder(data: Path) -> None:
    for f in data.iterdir():
        f.unlink()


def _only_binance(data: Path) -> None:
    for f in data.iterdir():
        if not f.name.startswith("binance_"):
            f.unlink()


def _fx_ends_before(data: Path) -> None:  # the FX file ends a week before the day
    _keep(data / "USDKRW_daily.csv", lambda line: line < "2018-01-03")


def _gzip_cut_bithumb_eth(data: Path) -> None:  # as .csv.gz: same rule for compressed files
    src = data / "bithumb_ETHKRW_1h.csv"
    _keep(src, lambda line: line < "2018-01-10T06")
    (data / "bithumb_ETHKRW_1h.csv.gz").write_bytes(gzip.compress(src.read_bytes()))
    src.unlink()


# case: (damage, the asset(s) re-run, what the error must name)
DAMAGE = {
    "bithumb BTC cut at 12:00": (
        _cut_bithumb_btc,
        "bithumb_candles",
        ["bithumb_candles", "BTC/KRW 1h: 12 of 24 bars", "hours now missing 12-23h"],
    ),
    "binance ETH lacks the day": (_drop_binance_eth_day, "binance_candles", ["ETH/USDT 1h: nothing"]),
    "empty data folder": (_empty_folder, RAW, ["bithumb_candles", "binance_candles", "fx_usdkrw"]),
    "only the binance files": (_only_binance, "bithumb_candles", ["BTC/KRW 1h: nothing"]),
    "FX ends before the day": (_fx_ends_before, "fx_usdkrw", ["fx_usdkrw", "daily_close 1d: nothing"]),
    "gzipped ETH cut at 06:00": (_gzip_cut_bithumb_eth, "bithumb_candles", ["ETH/KRW 1h: 6 of 24 bars"]),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_rerun_with_less_is_refused_and_the_store_is_byte_identical(
    good: Path, tmp_path: Path, case: str
) -> None:
    damage, select, named = DAMAGE[case]
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    damage(data)
    before = _hashes(good)
    result = _materialize(good, data, select=select)
    assert result.exit_code == 1, result.output
    assert "coverage" in result.output and "--allow-shrink" in result.output
    for text in named:
        assert text in result.output, (text, result.output)
    assert _hashes(good) == before
    assert not list((good / "store" / ".staging").glob("*/*")), "a failed run's staged outputs must go"


def test_a_failing_day_writes_no_partition_of_any_asset(good: Path, tmp_path: Path) -> None:
    """Binance's candles change (valid, and complete) while three hours of Bithumb BTC are missing: the run
    fails on Bithumb, and the new Binance candles of the same day are not written either."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    # 3 hours missing mid-day: a whole day still (no gap over 6 h), but less than stored
    _keep(data / "bithumb_BTCKRW_1h.csv", lambda line: not line.startswith(f"{DAY}T1") or line >= f"{DAY}T13")
    binance = data / "binance_BTCUSDT_1h.csv"
    lines = binance.read_text().splitlines(keepends=True)
    # scale every price of the day by 1.001 (high/low stay consistent; nothing else changes)
    out = [lines[0]]
    for line in lines[1:]:
        if line.startswith(DAY):
            cells = line.rstrip("\n").split(",")
            cells[1:5] = [f"{float(v) * 1.001:.6f}" for v in cells[1:5]]
            line = ",".join(cells) + "\n"
        out.append(line)
    binance.write_text("".join(out))
    before = _hashes(good)
    result = _materialize(good, data)
    assert result.exit_code == 1, result.output
    assert "BTC/KRW 1h: 21 of 24 bars" in result.output and "hours now missing 10-12h" in result.output
    assert _hashes(good) == before

    # Asked for deliberately, the same input replaces both (a copy of the store, the others still use it).
    home = tmp_path / "home"
    shutil.copytree(good, home)
    accepted = _materialize(home, data, "--allow-shrink")
    assert accepted.exit_code == 0, accepted.output
    after = _hashes(home)
    for table in ("bithumb_candles", "binance_candles"):
        assert after[f"{table}/{DAY}.parquet"] != before[f"{table}/{DAY}.parquet"], table
    assert after[f"fx_usdkrw/{DAY}.parquet"] == before[f"fx_usdkrw/{DAY}.parquet"]  # same data, same bytes
