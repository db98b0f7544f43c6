"""ExchangeSource against recorded (hand-built, API-format) responses: ccxt's HTTP layer is replaced, never the
network. ccxt's own market loading, request building and OHLCV parsing, and our paging, all run for real."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import ccxt
import polars as pl
import pytest

from kimp.errors import MarketDataError
from kimp.market_data import exchange as exchange_mod
from kimp.market_data.exchange import ExchangeSource, make_exchange
from kimp.market_data.files import clear_cache
from kimp.market_data.schemas import CANDLES, FX, MACRO, NEWS, ONCHAIN, ORDERBOOK, schema_problems

FIX = Path(__file__).parent / "fixtures" / "exchange"
DAY = date(2024, 3, 4)
NOW = datetime(2024, 3, 5, 3, 30, tzinfo=UTC)  # the recorded data ends with the still-forming 03:00 bar


def load(name: str) -> Any:
    return json.loads((FIX / name).read_text(encoding="utf-8"))


def _iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


class Recorded:
    """A stand-in for ``exchange.fetch(url, method, headers, body)``: serves the recorded responses, routed by
    URL, slicing the recorded candles the way each API does (Upbit: `count` before `to`, newest first;
    Binance: `limit` from `startTime`, oldest first; Bithumb: the whole recent window)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.calls.append(url)
        if self.fail_on and self.fail_on in url:
            raise ccxt.NetworkError(f"recorded failure: connection reset for {url}")
        u = urlparse(url)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        host, path = u.netloc, u.path
        if host == "api.upbit.com":
            if path == "/v1/market/all":
                return load("upbit_market_all.json")
            m = re.fullmatch(r"/v1/candles/minutes/(\d+)", path)
            if m:
                rows = load(f"upbit_candles_minutes_{m[1]}_{q['market']}.json")
                if "to" in q:
                    to = _iso_ms(q["to"])
                    rows = [r for r in rows if _iso_ms(r["candle_date_time_utc"] + "Z") < to]
                return rows[: int(q.get("count", 200))]
        if host == "api.binance.com":
            if path == "/api/v3/exchangeInfo":
                return load("binance_exchangeInfo.json")
            if path == "/api/v3/klines":
                rows = load(f"binance_klines_{q['symbol']}_{q['interval']}.json")
                if "startTime" in q:
                    rows = [r for r in rows if r[0] >= int(q["startTime"])]
                return rows[: int(q.get("limit", 500))]
        if host == "api.bithumb.com":
            m = re.fullmatch(r"/public/ticker/ALL_(\w+)", path)
            if m:
                return load(f"bithumb_ticker_ALL_{m[1]}.json")
            m = re.fullmatch(r"/public/candlestick/(\w+)/(\w+)", path)
            if m:
                return load(f"bithumb_candlestick_{m[1]}_{m[2]}.json")
        raise AssertionError(f"no recorded response for {method} {url}")

    def candle_calls(self) -> list[str]:
        return [c for c in self.calls if "candles/" in c or "klines" in c or "candlestick" in c]


def recorded_factory(recorded: Recorded, created: list[str] | None = None) -> Callable[[str], Any]:
    def factory(venue: str) -> Any:
        if created is not None:
            created.append(venue)
        ex = make_exchange(venue)
        ex.fetch = recorded
        ex.rateLimit = 1  # keep the (real) throttle, without real waits
        return ex

    return factory


def source(recorded: Recorded, **kw: Any) -> ExchangeSource:
    kw.setdefault("clock", lambda: NOW)
    return ExchangeSource(factory=recorded_factory(recorded), **kw)


def assert_schema(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> None:
    assert schema_problems(frame, schema) == []


# ----------------------------------------------------------------------------------------------- candles


def test_upbit_hourly_paged_from_newest_first_responses() -> None:
    rec = Recorded()
    src = source(rec, timeframe="1h", page_limits={"upbit": 10})
    out = src.candles("upbit", DAY)
    assert_schema(out, CANDLES)
    assert out.group_by("symbol").len().sort("symbol").rows() == [
        ("BTC/KRW", 24),
        ("ETH/KRW", 24),
        ("USDT/KRW", 24),
    ]
    assert set(out["interval_s"]) == {3600} and set(out["venue"]) == {"upbit"}
    assert out["quote_volume"].is_null().all()
    btc = out.filter(pl.col("symbol") == "BTC/KRW")
    assert btc["ts"].to_list() == [datetime(2024, 3, 4, h, tzinfo=UTC) for h in range(24)]
    raw = {r["candle_date_time_utc"]: r for r in load("upbit_candles_minutes_60_KRW-BTC.json")}
    first = raw["2024-03-04T00:00:00"]
    row = btc.row(0, named=True)
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (
        first["opening_price"],
        first["high_price"],
        first["low_price"],
        first["trade_price"],
        first["candle_acc_trade_volume"],
    )
    # 24 bars, 10 a page -> 3 pages per symbol, each `to` = since + 10 h
    calls = [c for c in rec.candle_calls() if "KRW-BTC" in c]
    assert len(calls) == 3
    assert [parse_qs(urlparse(c).query)["to"][0] for c in calls] == [
        "2024-03-04T10:00:00.000Z",
        "2024-03-04T20:00:00.000Z",
        "2024-03-05T06:00:00.000Z",
    ]


def test_binance_hourly_paged_with_start_time() -> None:
    rec = Recorded()
    src = source(rec, timeframe="1h", page_limits={"binance": 10})
    out = src.candles("binance", DAY)
    assert_schema(out, CANDLES)
    assert out.group_by("symbol").len().sort("symbol").rows() == [("BTC/USDT", 24), ("ETH/USDT", 24)]
    raw = {r[0]: r for r in load("binance_klines_BTCUSDT_1h.json")}
    row = out.filter(pl.col("symbol") == "BTC/USDT").row(23, named=True)
    k = raw[int(row["ts"].timestamp() * 1000)]
    assert row["ts"] == datetime(2024, 3, 4, 23, tzinfo=UTC)
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == tuple(
        float(x) for x in k[1:6]
    )
    starts = [int(parse_qs(urlparse(c).query)["startTime"][0]) for c in rec.candle_calls() if "BTCUSDT" in c]
    day0 = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp() * 1000)
    assert starts == [day0, day0 + 10 * 3_600_000, day0 + 20 * 3_600_000]


def test_bithumb_recent_window_and_out_of_reach_day() -> None:
    rec = Recorded()
    src = source(rec, timeframe="1h")
    out = src.candles("bithumb", DAY)
    assert_schema(out, CANDLES)
    assert out.group_by("symbol").len().sort("symbol").rows() == [("BTC/KRW", 24), ("ETH/KRW", 24)]
    # Bithumb arrays are [ms, open, close, high, low, volume]: ccxt reorders them
    raw = {r[0]: r for r in load("bithumb_candlestick_BTC_KRW_1h.json")["data"]}
    row = out.filter(pl.col("symbol") == "BTC/KRW").row(5, named=True)
    r = raw[int(row["ts"].timestamp() * 1000)]
    assert (row["open"], row["close"], row["high"], row["low"]) == (
        float(r[1]),
        float(r[2]),
        float(r[3]),
        float(r[4]),
    )
    with pytest.raises(MarketDataError) as exc:
        src.candles("bithumb", date(2024, 3, 1))
    msg = str(exc.value)
    assert "[exchange] partition 2024-03-01" in msg and "bithumb BTC/KRW" in msg and "out of its reach" in msg


def test_today_drops_the_still_forming_candle() -> None:
    rec = Recorded()
    out = source(rec, timeframe="1h", page_limits={"binance": 10}).candles("binance", date(2024, 3, 5))
    # now = 03:30: the 00:00, 01:00 and 02:00 bars are closed, the 03:00 bar is still forming
    assert out.filter(pl.col("symbol") == "BTC/USDT")["ts"].to_list() == [
        datetime(2024, 3, 5, h, tzinfo=UTC) for h in range(3)
    ]
    assert source(rec).candles("binance", date(2024, 3, 6)).height == 0  # a future day: nothing, no request


def test_upbit_default_1m_pages_across_gaps() -> None:
    rec = Recorded()
    src = source(rec, symbols={"upbit": ["BTC/KRW"]})
    assert src.timeframe == "1m" and src.interval_s == 60
    out = src.candles("upbit", DAY)
    expected = [
        datetime(2024, 3, 4, tzinfo=UTC) + timedelta(minutes=m) for m in [*range(60), *range(300, 330)]
    ]
    assert out["ts"].to_list() == expected
    assert set(out["interval_s"]) == {60}
    # 200-minute windows; windows with no candle are skipped, the day is finished (1440 min -> 7 to 9 requests)
    assert 7 <= len(rec.candle_calls()) <= 9
    assert all("count=200" in c for c in rec.candle_calls())


def test_overlapping_pages_are_deduplicated() -> None:
    class Overlapping:
        """Answers every page starting one bar before `since` (some APIs round down)."""

        def __init__(self) -> None:
            self.bars = [
                [int(datetime(2024, 3, 4, h, tzinfo=UTC).timestamp() * 1000), 1.0, 2.0, 0.5, 1.5, 3.0]
                for h in range(24)
            ]

        def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int) -> list[list[float]]:
            start = next((i for i, b in enumerate(self.bars) if b[0] >= since), len(self.bars))
            return copy.deepcopy(self.bars[max(start - 1, 0) : max(start - 1, 0) + limit])

    src = ExchangeSource(
        exchanges={"binance": Overlapping()},
        timeframe="1h",
        symbols={"binance": ["BTC/USDT"]},
        page_limits={"binance": 5},
        clock=lambda: NOW,
    )
    out = src.candles("binance", DAY)
    assert out.height == 24 and out["ts"].is_unique().all()


def test_network_error_names_exchange_symbol_and_day() -> None:
    rec = Recorded(fail_on="KRW-ETH")
    with pytest.raises(MarketDataError) as exc:
        source(rec, timeframe="1h").candles("upbit", DAY)
    msg = str(exc.value)
    assert "[exchange] partition 2024-03-04" in msg and "upbit ETH/KRW" in msg and "NetworkError" in msg


def test_bad_prices_from_the_exchange_are_refused() -> None:
    class Broken:
        def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int) -> list[list[Any]]:
            t = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp() * 1000)
            return (
                [[t, 1.0, 2.0, 0.5, 1.5, 3.0], [t + 3_600_000, 1.0, None, 0.5, 0.0, 3.0]]
                if since == t
                else []
            )

    src = ExchangeSource(
        exchanges={"binance": Broken()}, timeframe="1h", symbols={"binance": ["BTC/USDT"]}, clock=lambda: NOW
    )
    with pytest.raises(MarketDataError) as exc:
        src.candles("binance", DAY)
    assert "binance BTC/USDT" in str(exc.value) and "2024-03-04 01:00:00" in str(exc.value)


def test_exchanges_are_created_lazily_and_only_once() -> None:
    rec, created = Recorded(), []
    src = ExchangeSource(factory=recorded_factory(rec, created), timeframe="1h", clock=lambda: NOW)
    assert created == []
    src.provides("candles", "upbit")
    src.fx  # noqa: B018 - attribute access creates nothing
    assert created == []
    src.candles("upbit", DAY)
    src.candles("upbit", DAY - timedelta(days=0))
    assert created == ["upbit"]
    assert sum("market/all" in c for c in rec.calls) == 1  # markets loaded once


def test_make_exchange_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMP_UPBIT_API_KEY", "k-123")
    monkeypatch.setenv("KIMP_UPBIT_SECRET", "s-456")
    up = make_exchange("upbit")
    assert up.enableRateLimit is True and up.apiKey == "k-123" and up.secret == "s-456"
    monkeypatch.delenv("KIMP_BINANCE_API_KEY", raising=False)
    bn = make_exchange("binance")
    assert bn.enableRateLimit is True and not bn.apiKey
    assert bn.options["fetchMarkets"] == {"types": ["spot"]} and bn.options["fetchCurrencies"] is False


def test_provides_and_unprovided_tables() -> None:
    src = ExchangeSource(factory=lambda v: pytest.fail("no exchange may be created"), clock=lambda: NOW)
    assert src.name == "exchange"
    assert src.provides("candles") and all(
        src.provides("candles", v) for v in ("upbit", "bithumb", "binance")
    )
    assert not src.provides("candles", "coinone") and src.candles("coinone", DAY).height == 0
    assert src.provides("fx")
    for table, schema, fn in [
        ("orderbook", ORDERBOOK, src.orderbook),
        ("onchain", ONCHAIN, src.onchain),
        ("macro", MACRO, src.macro),
        ("news", NEWS, src.news),
    ]:
        assert not src.provides(table)  # type: ignore[arg-type]
        assert_schema(fn(DAY), schema)
        assert fn(DAY).height == 0


# ----------------------------------------------------------------------------------------------- fx


class FakeFrankfurter:
    def __init__(self, fail: bool = False) -> None:
        self.urls: list[str] = []
        self.fail = fail

    def __call__(self, url: str, timeout: float = 30.0) -> Any:
        self.urls.append(url)
        if self.fail:
            raise OSError("Temporary failure in name resolution")
        m = re.fullmatch(
            r"https://api\.frankfurter\.app/(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})\?from=USD&to=KRW", url
        )
        assert m, url
        doc = load("frankfurter_USD_KRW_2024-03.json")
        doc["rates"] = {k: v for k, v in doc["rates"].items() if m[1] <= k <= m[2]}
        return doc


def test_fx_from_ecb(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeFrankfurter()
    monkeypatch.setattr(exchange_mod, "http_get_json", fake)
    src = ExchangeSource(clock=lambda: datetime(2024, 3, 31, tzinfo=UTC))
    out = src.fx(DAY)
    assert_schema(out, FX)
    row = out.row(0, named=True)
    assert row["ts"] == datetime(2024, 3, 4, tzinfo=UTC) and row["series"] == "daily_close"
    assert row["published_at"] == datetime(2024, 3, 4, 15, tzinfo=UTC) and row["source"] == "ecb"
    assert row["close"] == load("frankfurter_USD_KRW_2024-03.json")["rates"]["2024-03-04"]["KRW"]
    assert row["interval_s"] == 86400 and row["open"] is None
    assert src.fx(date(2024, 3, 2)).height == 0  # Saturday: no ECB rate
    assert src.fx(date(2024, 3, 29)).height == 0  # Good Friday: no ECB rate
    assert_schema(src.fx(date(2024, 3, 2)), FX)
    assert fake.urls == [
        "https://api.frankfurter.app/2024-03-01..2024-03-31?from=USD&to=KRW"
    ]  # one call a month


def test_fx_from_ecb_not_yet_published(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange_mod, "http_get_json", FakeFrankfurter())
    src = ExchangeSource(clock=lambda: datetime(2024, 3, 4, 12, tzinfo=UTC))
    assert src.fx(DAY).height == 0  # 12:00 UTC: the 2024-03-04 rate comes out at ~15:00 UTC
    assert src.fx(date(2024, 3, 5)).height == 0  # the future


def test_fx_ecb_network_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange_mod, "http_get_json", FakeFrankfurter(fail=True))
    with pytest.raises(MarketDataError) as exc:
        ExchangeSource(clock=lambda: NOW).fx(DAY)
    assert "[exchange] partition 2024-03-04" in str(exc.value) and "frankfurter" in str(exc.value)


def test_fx_from_fx_dir_uses_the_files_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_cache()
    monkeypatch.setattr(exchange_mod, "http_get_json", lambda url: pytest.fail("no HTTP with fx_dir"))
    (tmp_path / "USDKRW_daily.csv").write_text(
        "date,close,open,high,low,volume,change_pct\n2024-03-04,1331.2,1330,1334,1329,,0.1\n"
    )
    out = ExchangeSource(fx_dir=str(tmp_path), clock=lambda: NOW).fx(DAY)
    assert_schema(out, FX)
    assert out["close"].to_list() == [1331.2] and out["source"].to_list() == ["files:USDKRW_daily.csv"]
    assert out["published_at"].to_list() == [datetime(2024, 3, 5, tzinfo=UTC)]
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    with pytest.raises(MarketDataError) as exc:
        ExchangeSource(fx_dir=str(empty_dir), clock=lambda: NOW).fx(DAY)
    assert "[exchange]" in str(exc.value) and "USDKRW" in str(exc.value)


def test_is_a_market_source_built_by_config() -> None:
    from kimp.market_data.source import MarketSource, build_source

    src = build_source("exchange")
    assert isinstance(src, ExchangeSource) and isinstance(src, MarketSource) and src.name == "exchange"
    assert src.fx_dir is None
