"""FilesSource: every accepted format, FX, caching, and every bad-input rule. Fixtures are built in tmp_path."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from kimp.errors import MarketDataError
from kimp.market_data.files import FilesSource, cache_stats, clear_cache
from kimp.market_data.schemas import CANDLES, FX, MACRO, NEWS, ONCHAIN, ORDERBOOK, schema_problems

DAY = date(2024, 1, 2)
T0 = datetime(2024, 1, 1, 20, tzinfo=UTC)  # 4 hours before DAY, so files straddle day boundaries
REAL = Path(__file__).parents[2] / "shared/data/real"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


# ----------------------------------------------------------------------------------------------- helpers


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def hours(n: int = 32, start: datetime = T0, step: timedelta = timedelta(hours=1)) -> list[datetime]:
    return [start + i * step for i in range(n)]


def simple_csv(
    times: list[datetime], *, base: str = "btc", quote: str = "krw", fmt: str = "%Y-%m-%dT%H:%M:%SZ"
) -> str:
    lines = [f"ts_utc,open,high,low,close,volume_{base},volume_{quote},tradecount"]
    for i, t in enumerate(times):
        p = 50_000_000.0 + 1000 * i
        lines.append(
            f"{t.strftime(fmt)},{p},{p + 500},{p - 500},{p + 100},{1.5 + i},{(1.5 + i) * p},{10 + i}"
        )
    return "\n".join(lines) + "\n"


def kline_rows(times: list[datetime], *, unit: int = 1000) -> list[list[object]]:
    rows: list[list[object]] = []
    for i, t in enumerate(times):
        ot = int(t.timestamp()) * unit
        p = 42_000.0 + i
        rows.append(
            [
                ot,
                f"{p:.2f}",
                f"{p + 5:.2f}",
                f"{p - 5:.2f}",
                f"{p + 1:.2f}",
                "12.5",
                ot + 3_599_999 * (unit // 1000),
                f"{12.5 * p:.2f}",
                100 + i,
                "6.0",
                f"{6 * p:.2f}",
                "0",
            ]
        )
    return rows


def kline_csv(rows: list[list[object]], header: bool = False) -> str:
    head = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
        "taker_buy_quote_volume,ignore\n"
    )
    return (head if header else "") + "\n".join(",".join(str(x) for x in r) for r in rows) + "\n"


def zip_bytes(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, text)
    return buf.getvalue()


def upbit_records(
    times: list[datetime], market: str = "KRW-BTC", unit: int | None = 60
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i, t in enumerate(times):
        p = 58_000_000.0 + 10_000 * i
        rec: dict[str, object] = {
            "market": market,
            "candle_date_time_utc": t.strftime("%Y-%m-%dT%H:%M:%S"),
            "candle_date_time_kst": (t + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S"),
            "opening_price": p,
            "high_price": p + 20_000,
            "low_price": p - 20_000,
            "trade_price": p + 5_000,
            "timestamp": int(t.timestamp() * 1000) + 3_599_000,
            "candle_acc_trade_price": 3.2 * p,
            "candle_acc_trade_volume": 3.2,
        }
        if unit is not None:
            rec["unit"] = unit
        out.append(rec)
    return out


def upbit_csv(records: list[dict[str, object]]) -> str:
    keys = list(records[0])
    return ",".join(keys) + "\n" + "\n".join(",".join(str(r[k]) for k in keys) for r in records) + "\n"


def error_of(fn: object, *args: object) -> MarketDataError:
    with pytest.raises(MarketDataError) as exc:
        fn(*args)  # type: ignore[operator]
    return exc.value


def assert_names(err: MarketDataError, *, file: str, day: date, lines: list[int] | None = None) -> None:
    msg = str(err)
    assert "[files]" in msg
    assert f"partition {day}" in msg
    assert file in msg
    assert "expected:" in msg
    if lines is not None:
        assert err.rows is not None and isinstance(err.rows, pl.DataFrame)
        assert sorted(set(err.rows["line"].to_list())) == sorted(lines), err.rows
        assert "offending rows" in msg


def assert_schema(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> None:
    assert schema_problems(frame, schema) == []


# ----------------------------------------------------------------------------------------------- formats


def test_simple_csv_gz_with_base_and_quote_volume(tmp_path: Path) -> None:
    write(tmp_path / "bithumb_BTCKRW_1h.csv.gz", simple_csv(hours()))
    src = FilesSource(tmp_path)
    out = src.candles("bithumb", DAY)
    assert_schema(out, CANDLES)
    assert out.height == 24
    assert out["ts"].min() == datetime(2024, 1, 2, tzinfo=UTC)
    assert out["ts"].max() == datetime(2024, 1, 2, 23, tzinfo=UTC)
    assert set(out["symbol"]) == {"BTC/KRW"} and set(out["base"]) == {"BTC"} and set(out["quote"]) == {"KRW"}
    assert set(out["interval_s"]) == {3600}
    first = out.row(0, named=True)
    assert first["volume"] == 1.5 + 4 and first["quote_volume"] == pytest.approx((1.5 + 4) * first["open"])
    assert src.provides("candles", "bithumb") and src.provides("candles")
    assert not src.provides("candles", "upbit")


def test_simple_csv_timestamp_without_zone_and_with_offset(tmp_path: Path) -> None:
    # 'timestamp' without suffix = UTC (the upbit_binance samples); an explicit +09:00 is converted.
    times = hours(48, start=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(minutes=5))
    naive = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{t:%Y-%m-%d %H:%M:%S},100,101,99,100.5,2\n" for t in times
    )
    write(tmp_path / "binance_BTCUSDT_5m_sample.csv", naive)
    kst = "ts_utc,open,high,low,close,volume\n" + "".join(
        f"{(t + timedelta(hours=9)):%Y-%m-%dT%H:%M:%S}+09:00,100,101,99,100.5,2\n" for t in hours(30)
    )
    write(tmp_path / "upbit_BTCKRW_1h.csv", kst)
    src = FilesSource(tmp_path)
    b = src.candles("binance", date(2024, 1, 1))
    assert b.height == 48 and b["ts"][0] == datetime(2024, 1, 1, tzinfo=UTC) and set(b["interval_s"]) == {300}
    assert b["quote_volume"].is_null().all()
    u = src.candles("upbit", DAY)
    assert u.height == 24 and u["ts"][0] == datetime(2024, 1, 2, tzinfo=UTC)


def test_investing_daily_candles_either_order(tmp_path: Path) -> None:
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(5)]
    body = "".join(f"{d},{50e6 + i},{49e6},{51e6},{48e6},{1.2e3},0.5\n" for i, d in enumerate(days))
    write(tmp_path / "upbit_BTCKRW_daily.csv", "date,close,open,high,low,volume,change_pct\n" + body)
    # investing.com's own export is newest first: accepted too
    rev = "".join(reversed(body.splitlines(keepends=True)))
    write(tmp_path / "sub" / "bithumb_BTCKRW_daily.csv", "date,close,open,high,low,volume,change_pct\n" + rev)
    src = FilesSource(tmp_path)
    for venue in ("upbit", "bithumb"):
        out = src.candles(venue, DAY)
        assert_schema(out, CANDLES)
        assert out.height == 1
        row = out.row(0, named=True)
        assert row["ts"] == datetime(2024, 1, 2, tzinfo=UTC) and row["interval_s"] == 86400
        assert row["close"] == 50e6 + 1 and row["open"] == 49e6 and row["volume"] == 1200.0


@pytest.mark.parametrize("unit", [1000, 1000_000], ids=["ms", "us"])
def test_binance_zip_ms_and_us(tmp_path: Path, unit: int) -> None:
    rows = kline_rows(hours(), unit=unit)
    write(tmp_path / "BTCUSDT-1h-2024-01.zip", zip_bytes("BTCUSDT-1h-2024-01.csv", kline_csv(rows)))
    out = FilesSource(tmp_path).candles("binance", DAY)
    assert_schema(out, CANDLES)
    assert out.height == 24 and out["ts"][0] == datetime(2024, 1, 2, tzinfo=UTC)
    assert out["symbol"][0] == "BTC/USDT" and out["volume"][0] == 12.5
    assert out["quote_volume"][0] == pytest.approx(12.5 * 42_004.0)


@pytest.mark.parametrize("header", [False, True], ids=["no-header", "header"])
def test_binance_csv_with_and_without_header(tmp_path: Path, header: bool) -> None:
    write(tmp_path / "ETHUSDT-1h-2024-01-02.csv", kline_csv(kline_rows(hours()), header=header))
    out = FilesSource(tmp_path).candles("binance", DAY)
    assert out.height == 24 and set(out["symbol"]) == {"ETH/USDT"}


def test_binance_klines_api_json(tmp_path: Path) -> None:
    write(tmp_path / "binance_BTCUSDT_1h_api.json", json.dumps(kline_rows(hours())))
    assert FilesSource(tmp_path).candles("binance", DAY).height == 24


def test_upbit_json_desc_jsonl_and_csv_asc(tmp_path: Path) -> None:
    recs = upbit_records(hours())
    write(
        tmp_path / "a" / "upbit_BTCKRW_1h_page.json", json.dumps(list(reversed(recs)))
    )  # API order: newest first
    write(
        tmp_path / "b" / "upbit_ETHKRW_1h.jsonl.gz",
        "\n".join(json.dumps(r) for r in upbit_records(hours(), "KRW-ETH")),
    )
    write(tmp_path / "c" / "upbit_USDTKRW_1h.csv", upbit_csv(upbit_records(hours(), "KRW-USDT")))
    out = FilesSource(tmp_path).candles("upbit", DAY)
    assert_schema(out, CANDLES)
    assert out.group_by("symbol").len().sort("symbol").rows() == [
        ("BTC/KRW", 24),
        ("ETH/KRW", 24),
        ("USDT/KRW", 24),
    ]
    btc = out.filter(pl.col("symbol") == "BTC/KRW")
    assert btc["ts"].is_sorted() and btc["ts"][0] == datetime(2024, 1, 2, tzinfo=UTC)
    assert btc["close"][0] == 58_000_000.0 + 40_000 + 5_000  # trade_price of the 00:00 UTC bar (5th record)
    assert btc["volume"][0] == 3.2 and btc["quote_volume"][0] == pytest.approx(3.2 * 58_040_000.0)
    usdt = out.filter(pl.col("symbol") == "USDT/KRW")
    assert usdt["base"][0] == "USDT" and usdt["quote"][0] == "KRW"


def test_several_intervals_and_files_of_one_series(tmp_path: Path) -> None:
    write(tmp_path / "bithumb_BTCKRW_1h_part1.csv", simple_csv(hours(20)))
    # overlaps the first file by 4 identical hours, then goes on
    all_rows = simple_csv(hours(40)).splitlines()
    write(tmp_path / "bithumb_BTCKRW_1h_part2.csv", "\n".join([all_rows[0], *all_rows[17:]]) + "\n")
    write(
        tmp_path / "bithumb_BTCKRW_daily.csv",
        "date,close,open,high,low\n2024-01-02,2,1,3,0.5\n2024-01-03,2,1,3,0.5\n",
    )
    write(tmp_path / "coinone_BTCKRW_1h.csv", simple_csv(hours()))  # another venue: ignored
    write(tmp_path / "bitstamp_BTCUSD_daily.csv", "date,close,open,high,low\n2024-01-02,2,1,3,0.5\n")
    src = FilesSource(tmp_path)
    out = src.candles("bithumb", DAY)
    assert out.group_by("interval_s").len().sort("interval_s").rows() == [(3600, 24), (86400, 1)]
    assert out.filter(pl.col("interval_s") == 3600)["ts"].is_unique().all()
    assert (
        "coinone_BTCKRW_1h.csv" in src.catalog.ignored and "bitstamp_BTCUSD_daily.csv" in src.catalog.ignored
    )
    cov = src.coverage("bithumb")
    assert cov["BTC/KRW"] == (T0, T0 + timedelta(hours=39))


def test_day_semantics_and_unprovided_tables(tmp_path: Path) -> None:
    write(tmp_path / "bithumb_BTCKRW_1h.csv", simple_csv(hours()))
    src = FilesSource(tmp_path)
    assert_schema(src.candles("upbit", DAY), CANDLES)  # no files at all for the venue
    assert src.candles("upbit", DAY).height == 0
    assert src.candles("bithumb", date(2023, 6, 1)).height == 0  # files, but no rows that day
    assert src.coverage("bithumb") == {"BTC/KRW": (T0, T0 + timedelta(hours=31))}
    assert src.coverage("upbit") == {}
    for table, schema, fn in [
        ("onchain", ONCHAIN, src.onchain),
        ("macro", MACRO, src.macro),
        ("fx", FX, src.fx),
        ("orderbook", ORDERBOOK, src.orderbook),
        ("news", NEWS, src.news),
    ]:
        assert not src.provides(table)  # type: ignore[arg-type]
        frame = fn(DAY)
        assert frame.height == 0
        assert_schema(frame, schema)


def test_zero_volume_placeholders_are_kept(tmp_path: Path) -> None:
    text = "ts_utc,open,high,low,close,volume_btc,volume_krw\n" + "".join(
        f"{t:%Y-%m-%dT%H:%M:%SZ},3000000.0,3000000.0,3000000.0,3000000.0,0.0,0.0\n" for t in hours()
    )
    write(tmp_path / "bithumb_BTCKRW_1h.csv.gz", text)
    out = FilesSource(tmp_path).candles("bithumb", DAY)
    assert out.height == 24 and (out["volume"] == 0).all()


# ----------------------------------------------------------------------------------------------- fx


def test_fx_investing_daily_weekends_absent_and_published_at(tmp_path: Path) -> None:
    # 2024-01-05 is a Friday; the weekend is absent, Monday 2024-01-08 follows
    write(
        tmp_path / "investing" / "USDKRW_daily.csv",
        "date,close,open,high,low,volume,change_pct\n"
        "2024-01-04,1310.5,1305.0,1312.0,1301.0,,0.3\n"
        "2024-01-05,1315.2,1310.0,1318.0,1309.0,,0.4\n"
        "2024-01-08,1312.0,1314.0,1316.0,1308.5,,-0.2\n",
    )
    src = FilesSource(tmp_path)
    assert src.provides("fx")
    fri = src.fx(date(2024, 1, 5))
    assert_schema(fri, FX)
    row = fri.row(0, named=True)
    assert row == {
        "ts": datetime(2024, 1, 5, tzinfo=UTC),
        "series": "daily_close",
        "interval_s": 86400,
        "published_at": datetime(2024, 1, 6, tzinfo=UTC),
        "open": 1310.0,
        "high": 1318.0,
        "low": 1309.0,
        "close": 1315.2,
        "source": "files:USDKRW_daily.csv",
    }
    for weekend in (date(2024, 1, 6), date(2024, 1, 7)):
        assert src.fx(weekend).height == 0
        assert_schema(src.fx(weekend), FX)
    assert src.fx_coverage() == (datetime(2024, 1, 4, tzinfo=UTC), datetime(2024, 1, 8, tzinfo=UTC))


@pytest.mark.parametrize("header", ["date,close", "date,usdkrw"])
def test_fx_two_column_variants(tmp_path: Path, header: str) -> None:
    write(tmp_path / "usdkrw_daily_ecb.csv", f"{header}\n2024-01-02,1300.5\n2024-01-03,1302.0\n")
    out = FilesSource(tmp_path).fx(DAY)
    assert out["close"].to_list() == [1300.5]
    assert out["open"].is_null().all()
    assert out["published_at"][0] == datetime(2024, 1, 3, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------- order books, news


def test_orderbook_wide_l10(tmp_path: Path) -> None:
    bids = [[100.0 - i, 1.0 + i] for i in range(20)]
    asks = [[101.0 + i, 2.0 + i] for i in range(3)]  # only 3 levels: the rest is null
    lines = [
        {
            "timestamp": "2024-01-02T06:03:18.382000",
            "exchange": "upbit",
            "symbol": "BTC/KRW",
            "bids": bids,
            "asks": asks,
        },
        {
            "timestamp": "2024-01-03T00:00:01",
            "exchange": "upbit",
            "symbol": "BTC/KRW",
            "bids": bids,
            "asks": asks,
        },
    ]
    write(
        tmp_path / "ob" / "upbit_BTCKRW_orderbook_20240102T06.jsonl.gz",
        "\n".join(json.dumps(x) for x in lines),
    )
    src = FilesSource(tmp_path)
    assert (
        src.provides("orderbook")
        and src.provides("orderbook", "upbit")
        and not src.provides("orderbook", "binance")
    )
    out = src.orderbook(DAY)
    assert_schema(out, ORDERBOOK)
    row = out.row(0, named=True)
    assert row["ts"] == datetime(2024, 1, 2, 6, 3, 18, 382000, tzinfo=UTC)
    assert row["bid_px_1"] == 100.0 and row["bid_px_10"] == 91.0 and row["ask_px_3"] == 103.0
    assert row["ask_px_4"] is None and row["ask_sz_10"] is None
    assert out.height == 1


def test_news_csv(tmp_path: Path) -> None:
    write(
        tmp_path / "cryptonews.csv.gz",
        "published_at,sentiment,source,subject,text,title,url\n"
        '2024-01-02T04:24,"{}",CryptoNews,bitcoin,"Some text, with comma.",Headline one,http://x\n'
        '2024-01-02T23:59,"{}",CoinTelegraph,bitcoin,Body,,http://y\n'
        '2024-01-03T00:00,"{}",CoinTelegraph,bitcoin,Body,Next day,http://z\n',
    )
    src = FilesSource(tmp_path)
    assert src.provides("news")
    out = src.news(DAY)
    assert_schema(out, NEWS)
    assert out["ts"].to_list() == [
        datetime(2024, 1, 2, 4, 24, tzinfo=UTC),
        datetime(2024, 1, 2, 23, 59, tzinfo=UTC),
    ]
    assert out["headline"].to_list() == ["Headline one", None]
    assert out["source"].to_list() == ["CryptoNews", "CoinTelegraph"]


# ----------------------------------------------------------------------------------------------- caching


def test_each_file_is_parsed_once_and_reparsed_when_it_changes(tmp_path: Path) -> None:
    long = hours(24 * 31, start=datetime(2024, 1, 1, tzinfo=UTC))
    write(tmp_path / "bithumb_BTCKRW_1h.csv.gz", simple_csv(long))
    write(tmp_path / "bithumb_ETHKRW_1h.csv.gz", simple_csv(long, base="eth"))
    write(
        tmp_path / "USDKRW_daily.csv",
        "date,close\n" + "".join(f"2024-01-{d:02d},1300\n" for d in range(1, 32)),
    )
    src = FilesSource(tmp_path)
    for i in range(30):
        d = date(2024, 1, 1) + timedelta(days=i)
        assert src.candles("bithumb", d).height == 48
        assert src.fx(d).height == 1
    assert cache_stats().misses == 3
    # a second source in the same process reuses the parsed files
    FilesSource(tmp_path).candles("bithumb", DAY)
    assert cache_stats().misses == 3
    # a changed file (mtime + size) is parsed again, the others are not
    path = tmp_path / "USDKRW_daily.csv"
    write(path, "date,close\n" + "".join(f"2024-01-{d:02d},1400\n" for d in range(1, 32)))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert src.fx(DAY)["close"][0] == 1400.0
    assert cache_stats().misses == 4


# ----------------------------------------------------------------------------------------------- bad input: structural


def test_unparseable_number_fails_every_day_naming_file_and_row(tmp_path: Path) -> None:
    text = simple_csv(hours()).replace(",50001000.0,", ",5001x000.0,", 1)  # row of 2024-01-01T21Z, line 3
    write(tmp_path / "bithumb_BTCKRW_1h.csv", text)
    src = FilesSource(tmp_path)
    for d in (DAY, date(2024, 1, 1)):
        err = error_of(src.candles, "bithumb", d)
        assert_names(err, file="bithumb_BTCKRW_1h.csv", day=d, lines=[3])
        assert "unparseable number" in str(err) and "5001x000.0" in str(err)


def test_unparseable_timestamp(tmp_path: Path) -> None:
    text = simple_csv(hours()).replace("2024-01-02T05:00:00Z", "2024-01-02 5am")
    write(tmp_path / "bithumb_BTCKRW_1h.csv", text)
    err = error_of(FilesSource(tmp_path).candles, "bithumb", DAY)
    assert_names(err, file="bithumb_BTCKRW_1h.csv", day=DAY, lines=[11])
    assert "unparseable timestamp" in str(err) and "2024-01-02 5am" in str(err)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "bithumb_BTCKRW_1h.csv.gz", simple_csv(hours()))
    path.write_bytes(path.read_bytes()[:-30])
    err = error_of(FilesSource(tmp_path).candles, "bithumb", DAY)
    assert_names(err, file="bithumb_BTCKRW_1h.csv.gz", day=DAY)
    assert "gzip" in str(err)


def test_truncated_zip(tmp_path: Path) -> None:
    data = zip_bytes("BTCUSDT-1h-2024-01.csv", kline_csv(kline_rows(hours())))
    write(tmp_path / "BTCUSDT-1h-2024-01.zip", data[: len(data) // 2])
    err = error_of(FilesSource(tmp_path).candles, "binance", DAY)
    assert_names(err, file="BTCUSDT-1h-2024-01.zip", day=DAY)
    assert "zip" in str(err)


def test_missing_columns(tmp_path: Path) -> None:
    write(
        tmp_path / "bithumb_BTCKRW_1h.csv", "ts_utc,open,high,close,volume\n2024-01-02T00:00:00Z,1,2,1.5,3\n"
    )
    write(tmp_path / "USDKRW_daily.csv", "day,value\n2024-01-02,1300\n")
    src = FilesSource(tmp_path)
    err = error_of(src.candles, "bithumb", DAY)
    assert_names(err, file="bithumb_BTCKRW_1h.csv", day=DAY)
    assert "missing columns ['low']" in str(err)
    err = error_of(src.fx, DAY)
    assert_names(err, file="USDKRW_daily.csv", day=DAY)
    assert "missing columns" in str(err)


def test_unsorted_simple_csv_and_binance(tmp_path: Path) -> None:
    lines = simple_csv(hours()).splitlines()
    lines[5], lines[6] = lines[6], lines[5]  # lines 6 and 7 of the file swapped
    write(tmp_path / "bithumb_BTCKRW_1h.csv", "\n".join(lines) + "\n")
    rows = kline_rows(hours())
    rows[10], rows[11] = rows[11], rows[10]
    write(tmp_path / "BTCUSDT-1h-2024-01.csv", kline_csv(rows))
    src = FilesSource(tmp_path)
    err = error_of(src.candles, "bithumb", date(2024, 1, 5))  # even a day the file does not cover
    assert_names(err, file="bithumb_BTCKRW_1h.csv", day=date(2024, 1, 5), lines=[7])
    assert "not in ascending order" in str(err)
    err = error_of(src.candles, "binance", DAY)
    assert_names(err, file="BTCUSDT-1h-2024-01.csv", day=DAY, lines=[12])


def test_upbit_mixed_order_is_an_error(tmp_path: Path) -> None:
    recs = upbit_records(hours())
    recs[3], recs[4] = recs[4], recs[3]
    write(tmp_path / "upbit_BTCKRW_1h.json", json.dumps(recs))
    err = error_of(FilesSource(tmp_path).candles, "upbit", DAY)
    assert_names(err, file="upbit_BTCKRW_1h.json", day=DAY)
    assert "neither ascending nor descending" in str(err)


def test_upbit_kst_only_is_read_as_korea_time(tmp_path: Path) -> None:
    """An Upbit dump with only candle_date_time_kst (no offset in the values): the name says UTC+9."""
    recs = upbit_records(hours())
    write(tmp_path / "full" / "upbit_BTCKRW_1h.json", json.dumps(recs))
    kst_only = [{k: v for k, v in r.items() if k != "candle_date_time_utc"} for r in recs]
    write(tmp_path / "kst" / "upbit_BTCKRW_1h.json", json.dumps(kst_only))
    full = FilesSource(tmp_path / "full").candles("upbit", DAY)
    kst = FilesSource(tmp_path / "kst").candles("upbit", DAY)
    assert kst.height == 24 and kst["ts"][0] == datetime(2024, 1, 2, tzinfo=UTC)
    assert kst.drop("ts").equals(full.drop("ts")) and kst["ts"].equals(full["ts"])


def test_simple_csv_zone_from_the_column_name(tmp_path: Path) -> None:
    """ts_kst / timestamp_kst: naive Korea wall-clock times, converted; an unknown zone name is refused."""
    times = hours(30)
    for name in ("ts_kst", "timestamp_kst"):
        kst = f"{name},open,high,low,close,volume\n" + "".join(
            f"{t + timedelta(hours=9):%Y-%m-%d %H:%M:%S},100,101,99,100.5,2\n" for t in times
        )
        write(tmp_path / name / "upbit_BTCKRW_1h.csv", kst)
        out = FilesSource(tmp_path / name).candles("upbit", DAY)
        assert out.height == 24 and out["ts"][0] == datetime(2024, 1, 2, tzinfo=UTC), name
    local = "timestamp_local,open,high,low,close,volume\n2024-01-02 09:00:00,100,101,99,100.5,2\n"
    write(tmp_path / "local" / "upbit_BTCKRW_1h.csv", local)
    err = error_of(FilesSource(tmp_path / "local").candles, "upbit", DAY)
    assert_names(err, file="upbit_BTCKRW_1h.csv", day=DAY)
    assert "cannot tell the time zone of column 'timestamp_local'" in str(err)
    assert "ts_kst (Korea time, UTC+9)" in str(err) and "+09:00" in str(err)


@pytest.mark.parametrize("name", ["bithumb_BTCKRW_1h.csv", "USDKRW_daily.csv", "BTCUSDT-1h-2024-01.csv"])
def test_a_row_missing_a_field_is_refused(tmp_path: Path, name: str) -> None:
    """A row cut short (its last field missing) is not an unknown volume: the file is refused."""
    if name.startswith("bithumb"):
        text = simple_csv(hours())
    elif name.startswith("USDKRW"):
        text = "date,close,open,high,low,volume,change_pct\n" + "".join(
            f"2024-01-{d:02d},1300.5,1299,1302,1298,,0.1\n" for d in range(1, 6)
        )
    else:
        text = kline_csv(kline_rows(hours()))
    lines = text.splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # the third data row loses its last field
    write(tmp_path / name, "\n".join(lines) + "\n")
    src = FilesSource(tmp_path)
    err = (
        error_of(src.fx, DAY)
        if name.startswith("USDKRW")
        else error_of(src.candles, "binance" if name.startswith("BTC") else "bithumb", DAY)
    )
    assert_names(err, file=name, day=DAY)
    assert "a missing field" in str(err) and "line 4" in str(err)


def test_upbit_utc_not_kst_minus_9h_is_wrong_time_zone(tmp_path: Path) -> None:
    recs = upbit_records(hours())
    for r in recs[5:7]:  # a dump where 'utc' was filled with KST wall times for two rows
        r["candle_date_time_utc"] = r["candle_date_time_kst"]
    write(tmp_path / "upbit_BTCKRW_1h.csv", upbit_csv(recs))
    err = error_of(FilesSource(tmp_path).candles, "upbit", DAY)
    assert_names(err, file="upbit_BTCKRW_1h.csv", day=DAY, lines=[7, 8])
    assert "wrong time zone" in str(err)


def test_upbit_market_and_unit_must_match_the_name(tmp_path: Path) -> None:
    write(tmp_path / "a" / "upbit_BTCKRW_1h.json", json.dumps(upbit_records(hours(), market="KRW-ETH")))
    err = error_of(FilesSource(tmp_path / "a").candles, "upbit", DAY)
    assert_names(err, file="upbit_BTCKRW_1h.json", day=DAY)
    assert "another market" in str(err)
    write(tmp_path / "b" / "upbit_BTCKRW_1h.json", json.dumps(upbit_records(hours(), unit=1)))
    err = error_of(FilesSource(tmp_path / "b").candles, "upbit", DAY)
    assert_names(err, file="upbit_BTCKRW_1h.json", day=DAY)
    assert "contradicts" in str(err)


def test_interval_in_name_contradicting_data(tmp_path: Path) -> None:
    write(tmp_path / "bithumb_BTCKRW_1m.csv", simple_csv(hours()))  # hourly data, '1m' in the name
    err = error_of(FilesSource(tmp_path).candles, "bithumb", DAY)
    assert_names(err, file="bithumb_BTCKRW_1m.csv", day=DAY)
    assert "interval in the name (60 s) contradicts the data" in str(err) and "3600" in str(err)


def test_structural_error_is_cached_but_still_raised(tmp_path: Path) -> None:
    write(tmp_path / "bithumb_BTCKRW_1m.csv", simple_csv(hours()))
    src = FilesSource(tmp_path)
    for _ in range(3):
        error_of(src.candles, "bithumb", DAY)
    assert cache_stats().misses == 1


def test_missing_data_dir() -> None:
    err = error_of(FilesSource, "/nonexistent/kimp-data")
    assert "[files]" in str(err) and "/nonexistent/kimp-data" in str(err)


# ----------------------------------------------------------------------------------------------- bad input: rows


def test_nan_and_empty_prices_fail_only_their_day(tmp_path: Path) -> None:
    lines = simple_csv(hours()).splitlines()
    parts = lines[10].split(",")
    parts[4] = "NaN"  # close of 2024-01-02T05Z (line 11)
    lines[10] = ",".join(parts)
    parts = lines[12].split(",")
    parts[1] = ""  # open of 2024-01-02T07Z (line 13)
    lines[12] = ",".join(parts)
    write(tmp_path / "bithumb_BTCKRW_1h.csv", "\n".join(lines) + "\n")
    src = FilesSource(tmp_path)
    err = error_of(src.candles, "bithumb", DAY)
    assert_names(err, file="bithumb_BTCKRW_1h.csv", day=DAY, lines=[11, 13])
    assert "close is empty/NaN/infinite" in str(err) and "open is empty/NaN/infinite" in str(err)
    assert src.candles("bithumb", date(2024, 1, 1)).height == 4
    assert src.candles("bithumb", date(2024, 1, 3)).height == 4


def test_non_positive_prices_fail_only_their_day(tmp_path: Path) -> None:
    lines = simple_csv(hours()).splitlines()
    parts = lines[2].split(",")
    parts[3] = "0"  # low of 2024-01-01T21Z (line 3)
    lines[2] = ",".join(parts)
    parts = lines[30].split(",")
    parts[2] = "-5"  # high of 2024-01-03T01Z (line 31)
    lines[30] = ",".join(parts)
    write(tmp_path / "bithumb_BTCKRW_1h.csv", "\n".join(lines) + "\n")
    src = FilesSource(tmp_path)
    assert src.candles("bithumb", DAY).height == 24
    err = error_of(src.candles, "bithumb", date(2024, 1, 1))
    assert_names(err, file="bithumb_BTCKRW_1h.csv", day=date(2024, 1, 1), lines=[3])
    assert "low <= 0" in str(err)
    err = error_of(src.candles, "bithumb", date(2024, 1, 3))
    assert_names(err, file="bithumb_BTCKRW_1h.csv", day=date(2024, 1, 3), lines=[31])


def test_fx_bad_close_fails_its_day(tmp_path: Path) -> None:
    write(tmp_path / "USDKRW_daily.csv", "date,close\n2024-01-02,1300\n2024-01-03,0\n2024-01-04,\n")
    src = FilesSource(tmp_path)
    assert src.fx(DAY).height == 1
    err = error_of(src.fx, date(2024, 1, 3))
    assert_names(err, file="USDKRW_daily.csv", day=date(2024, 1, 3), lines=[3])
    err = error_of(src.fx, date(2024, 1, 4))
    assert_names(err, file="USDKRW_daily.csv", day=date(2024, 1, 4), lines=[4])


def test_identical_duplicates_dropped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = simple_csv(hours()).splitlines()
    lines.insert(8, lines[7])  # the 2024-01-02T02Z row twice, identical (like bithumb_BTCKRW_1h)
    write(tmp_path / "bithumb_BTCKRW_1h.csv", "\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        out = FilesSource(tmp_path).candles("bithumb", DAY)
    assert out.height == 24 and out["ts"].is_unique().all()
    assert any(
        "identical duplicate" in r.getMessage() and "bithumb_BTCKRW_1h.csv" in r.getMessage()
        for r in caplog.records
    )


def test_conflicting_duplicates_fail_only_their_day(tmp_path: Path) -> None:
    lines = simple_csv(hours()).splitlines()
    dup = lines[7].split(",")
    dup[4] = "1.0"  # same ts (2024-01-02T02Z), different close
    lines.insert(8, ",".join(dup))
    write(tmp_path / "bithumb_BTCKRW_1h.csv", "\n".join(lines) + "\n")
    src = FilesSource(tmp_path)
    err = error_of(src.candles, "bithumb", DAY)
    assert_names(err, file="bithumb_BTCKRW_1h.csv", day=DAY, lines=[8, 9])
    assert "conflicting duplicate" in str(err)
    assert src.candles("bithumb", date(2024, 1, 1)).height == 4


def test_conflicting_overlap_between_files(tmp_path: Path) -> None:
    write(tmp_path / "x" / "BTCUSDT-1h-2024-01-01.csv", kline_csv(kline_rows(hours(6))))
    rows = kline_rows(hours(30))
    rows[2][4] = "1.00"  # 2024-01-01T22Z close differs from the other file
    write(tmp_path / "y" / "BTCUSDT-1h-2024-01-02.csv", kline_csv(rows))
    src = FilesSource(tmp_path)
    assert src.candles("binance", DAY).height == 24  # the overlap is on 2024-01-01 only
    err = error_of(src.candles, "binance", date(2024, 1, 1))
    assert_names(err, file="x/BTCUSDT-1h-2024-01-01.csv", day=date(2024, 1, 1))
    assert "y/BTCUSDT-1h-2024-01-02.csv" in str(err) and "conflicting duplicate" in str(err)


# ----------------------------------------------------------------------------------------------- real samples


@pytest.mark.skipif(not REAL.is_dir(), reason=f"shared real-data samples not found at {REAL}")
def test_real_samples_bithumb_binance_1h_and_usdkrw(tmp_path: Path) -> None:
    for sub in ("bithumb_binance_1h", "investing_daily"):
        for f in (REAL / sub).iterdir():
            if f.name.endswith((".csv", ".csv.gz")) and (sub != "investing_daily" or "USDKRW" in f.name):
                (tmp_path / f.name).symlink_to(f)
    src = FilesSource(tmp_path)
    d = date(2018, 1, 10)
    for venue, symbols in (("bithumb", {"BTC/KRW", "ETH/KRW"}), ("binance", {"BTC/USDT", "ETH/USDT"})):
        out = src.candles(venue, d)
        assert_schema(out, CANDLES)
        assert dict(out.group_by("symbol").len().rows()) == dict.fromkeys(symbols, 24)
        assert set(out["interval_s"]) == {3600}
        assert (out["close"] > 0).all()
    fx = src.fx(d)
    assert_schema(fx, FX)
    assert fx.height == 1 and 1000 < fx["close"][0] < 1200
    assert fx["published_at"][0] == datetime(2018, 1, 11, tzinfo=UTC)


def test_simple_csv_epoch_milliseconds(tmp_path: Path) -> None:
    text = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{int(t.timestamp() * 1000)},100,101,99,100.5,2\n" for t in hours()
    )
    write(tmp_path / "binance_BTCUSDT_1h.csv", text)
    out = FilesSource(tmp_path).candles("binance", DAY)
    assert out.height == 24 and out["ts"][0] == datetime(2024, 1, 2, tzinfo=UTC)


def test_is_a_market_source_built_by_config(tmp_path: Path) -> None:
    from kimp.market_data.source import MarketSource, build_source

    write(tmp_path / "bithumb_BTCKRW_1h.csv", simple_csv(hours()))
    src = build_source("files", data_dir=str(tmp_path))
    assert isinstance(src, FilesSource) and isinstance(src, MarketSource) and src.name == "files"
