"""Feeds: the stored replay's ordering and pacing, and the live exchange feed on recorded exchange answers
(REST through ccxt's real request building and parsing; a websocket frame through ccxt.pro's real handler);
never the network."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from kimp.market_data.schemas import FX, ORDERBOOK, schema_problems
from kimp.market_data.simulated import SimulatedSource
from kimp.streaming import BarClose, Rows, StreamingEngine
from kimp.streaming.exchange_feed import ExchangeFeed, _WebsocketBooks, book_row
from kimp.streaming.feeds import Pacer, StoredFeed
from tests.test_exchange_source import Recorded, load, recorded_factory

STREAMING = Path(__file__).parent / "fixtures" / "streaming"


def _load(name: str) -> Any:
    return json.loads((STREAMING / name).read_text(encoding="utf-8"))


class RecordedBooks(Recorded):
    """The exchange fixtures plus the order-book answers of tests/fixtures/streaming."""

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        if "/v1/orderbook" in url:
            self.calls.append(url)
            return _load(f"upbit_orderbook_{url.split('markets=')[1].split('&')[0]}.json")
        if "/api/v3/depth" in url:
            self.calls.append(url)
            return _load(f"binance_depth_{url.split('symbol=')[1].split('&')[0]}.json")
        if "/public/orderbook/" in url:
            self.calls.append(url)
            return _load(f"bithumb_orderbook_{url.split('/public/orderbook/')[1].split('?')[0]}.json")
        return super().__call__(url, method, headers, body)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


# ------------------------------------------------------------------------------------------- stored feed
def test_stored_feed_orders_events_by_when_they_became_known_and_paces_them() -> None:
    source = SimulatedSource(seed=3, orderbook_interval_ms=20_000)
    start = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
    waits: list[float] = []
    wall = [0.0]  # a fake wall clock that only sleeping advances

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        wall[0] += seconds

    feed = StoredFeed(
        source,
        start=start,
        end=start + timedelta(minutes=5),
        interval_s=60,
        speed=60.0,
        sleep=sleep,
        clock=lambda: wall[0],
    )
    events = list(feed.events())
    closes = [e for e in events if isinstance(e, BarClose)]
    assert [c.ts for c in closes] == [start + timedelta(minutes=k) for k in range(5)]
    times = [e.at for e in events]
    assert times == sorted(times)
    for close in closes:
        i = events.index(close)
        before = [e for e in events[:i] if isinstance(e, Rows) and e.at == close.at]
        after = [e for e in events[i + 1 :] if isinstance(e, Rows) and e.at == close.at]
        assert {e.table for e in before} <= {"fx", "onchain", "macro", "candles"}
        assert any(e.table == "candles" for e in before), "a bar's candles come before its close"
        assert {e.table for e in after} <= {"orderbook", "news"}, (
            "rows stamped at the close belong to the next bar"
        )
        candles = next(e for e in before if e.table == "candles").rows
        assert set(candles["ts"]) == {close.ts} and candles.height == 7
    assert all(e.at > start for e in events if isinstance(e, Rows) and e.table in ("fx", "onchain", "macro"))
    # 60x real time: from the first event to the last close, (that span) / 60 of waits
    assert sum(waits) == pytest.approx((events[-1].at - events[0].at).total_seconds() / 60, abs=1e-6)


def test_pacer_rejects_bad_speed() -> None:
    with pytest.raises(ValueError, match="speed must be > 0"):
        Pacer(0)


# ------------------------------------------------------------------------------------------ exchange feed
def _feed(rec: Recorded, clock: Clock, **kw: Any) -> ExchangeFeed:
    return ExchangeFeed(
        timeframe="1h", factory=recorded_factory(rec), clock=clock, sleep=lambda s: None, **kw
    )


def test_exchange_feed_closes_a_bar_once_every_market_has_it() -> None:
    clock = Clock(datetime(2024, 3, 5, 2, 0, 10, tzinfo=UTC))
    feed = _feed(RecordedBooks(), clock, book_every_s=5.0)
    events = feed.poll()
    books = [e for e in events if isinstance(e, Rows) and e.table == "orderbook"]
    assert len(books) == 1 and books[0].rows.height == 7 and schema_problems(books[0].rows, ORDERBOOK) == []
    up = (
        books[0]
        .rows.filter((pl.col("venue") == "upbit") & (pl.col("symbol") == "BTC/KRW"))
        .row(0, named=True)
    )
    units = _load("upbit_orderbook_KRW-BTC.json")[0]["orderbook_units"]
    assert up["bid_px_1"] == units[0]["bid_price"] and up["ask_sz_10"] == units[9]["ask_size"]
    assert up["ts"] == datetime(2024, 3, 5, 2, 0, 5, 123000, tzinfo=UTC)  # the venue's own timestamp
    candles = next(e for e in events if isinstance(e, Rows) and e.table == "candles").rows
    assert set(candles["ts"]) == {datetime(2024, 3, 5, 1, 0, tzinfo=UTC)} and candles.height == 7
    assert [e.ts for e in events if isinstance(e, BarClose)] == [datetime(2024, 3, 5, 1, 0, tzinfo=UTC)]
    assert feed.poll() == []  # nothing new: books not due, no bar closed
    clock.t = datetime(2024, 3, 5, 3, 0, 3, tzinfo=UTC)
    closes = [e for e in feed.poll() if isinstance(e, BarClose)]
    assert [c.ts for c in closes] == [datetime(2024, 3, 5, 2, 0, tzinfo=UTC)]


def test_exchange_feed_waits_for_a_failing_venue_then_closes_without_it() -> None:
    clock = Clock(datetime(2024, 3, 5, 2, 0, 10, tzinfo=UTC))
    feed = _feed(Recorded(fail_on="bithumb"), clock, book_every_s=1e9, grace_s=30.0)
    feed._last_books = clock.t  # no books in this test
    assert [e for e in feed.poll() if isinstance(e, BarClose)] == []
    assert any("bithumb" in err and "NetworkError" in err for err in feed.errors)
    clock.t = datetime(2024, 3, 5, 2, 0, 31, tzinfo=UTC)
    events = feed.poll()
    candles = next(e for e in events if isinstance(e, Rows) and e.table == "candles").rows
    assert set(candles["venue"]) == {"upbit", "binance"}
    assert [e.ts for e in events if isinstance(e, BarClose)] == [datetime(2024, 3, 5, 1, 0, tzinfo=UTC)]


def test_exchange_feed_emits_each_fx_row_once_when_published() -> None:
    published = datetime(2024, 3, 5, 2, 30, tzinfo=UTC)
    fx = pl.DataFrame(
        {
            "ts": [datetime(2024, 3, 4, tzinfo=UTC)],
            "series": ["daily_close"],
            "interval_s": [86_400],
            "published_at": [published],
            "open": [None],
            "high": [None],
            "low": [None],
            "close": [1333.2],
            "source": ["ecb"],
        },
        schema=FX,
    )
    clock = Clock(datetime(2024, 3, 5, 2, 0, 10, tzinfo=UTC))
    feed = _feed(
        Recorded(), clock, fx=lambda d: fx if d == date(2024, 3, 5) else fx.clear(), book_every_s=1e9
    )
    feed._last_books = clock.t
    assert not [e for e in feed.poll() if isinstance(e, Rows) and e.table == "fx"]
    clock.t = published + timedelta(seconds=1)
    got = [e for e in feed.poll() if isinstance(e, Rows) and e.table == "fx"]
    assert len(got) == 1 and got[0].rows["close"].to_list() == [1333.2]
    clock.t += timedelta(minutes=1)
    assert not [e for e in feed.poll() if isinstance(e, Rows) and e.table == "fx"]


def test_websocket_frame_through_ccxt_pro_becomes_a_book_row_and_an_event() -> None:
    import ccxt.pro

    frame = _load("upbit_ws_orderbook_KRW-BTC.json")
    ex = ccxt.pro.upbit()

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return load("upbit_market_all.json")

    class Client:  # what ccxt.pro's handler talks to: resolves the watcher's future with the parsed book
        url = "wss://api.upbit.com/websocket/v1"

        def __init__(self) -> None:
            self.resolved: list[tuple[str, Any]] = []

        def resolve(self, result: Any, message_hash: str) -> None:
            self.resolved.append((message_hash, result))

    ex.fetch = fetch

    async def parse() -> Any:
        await ex.load_markets()
        client = Client()
        ex.handle_message(client, frame)
        await ex.close()
        return client.resolved[0]

    message_hash, book = asyncio.run(parse())
    assert message_hash == "orderbook:BTC/KRW" and book["symbol"] == "BTC/KRW"
    row = book_row("upbit", "BTC/KRW", book, 0)
    units = frame["orderbook_units"]
    assert row["bid_px_1"] == units[0]["bid_price"] and row["ask_px_10"] == units[9]["ask_price"]
    assert row["ts"] == datetime.fromtimestamp(frame["timestamp"] / 1000, UTC)

    class Pro:  # the same parsed book served by watch_order_book, as a live connection would
        def __init__(self, venue: str) -> None:
            self.n = 0

        async def watch_order_book(self, symbol: str, limit: int) -> Any:
            self.n += 1
            await asyncio.sleep(0.01)
            return book

        async def close(self) -> None:
            return None

    clock = Clock(datetime(2024, 3, 5, 2, 0, 10, tzinfo=UTC))
    feed = _feed(Recorded(), clock, websocket=True, ws_factory=Pro, symbols={"upbit": ("BTC/KRW",)})
    assert isinstance(feed._ws, _WebsocketBooks)
    feed._ws.start()
    try:
        for _ in range(100):
            books = [e for e in feed.poll() if isinstance(e, Rows) and e.table == "orderbook"]
            if books:
                break
            asyncio.run(asyncio.sleep(0.05))
    finally:
        feed._ws.stop()
    assert books and books[0].rows["bid_px_1"].to_list() == [units[0]["bid_price"]]


def test_exchange_events_stream_into_the_engine() -> None:
    clock = Clock(datetime(2024, 3, 5, 2, 0, 10, tzinfo=UTC))
    fx = pl.DataFrame(
        {
            "ts": [datetime(2024, 3, 4, tzinfo=UTC)],
            "series": ["daily_close"],
            "interval_s": [86_400],
            "published_at": [datetime(2024, 3, 4, 15, tzinfo=UTC)],
            "open": [None],
            "high": [None],
            "low": [None],
            "close": [1333.2],
            "source": ["ecb"],
        },
        schema=FX,
    )
    feed = _feed(RecordedBooks(), clock, fx=lambda d: fx)
    engine = StreamingEngine(interval_s=3600, kr_venue="upbit")
    vectors = [v for e in feed.poll() for v in engine.on_event(e)]
    assert [(v.coin, v.ts) for v in vectors] == [
        ("BTC", datetime(2024, 3, 5, 1, 0, tzinfo=UTC)),
        ("ETH", datetime(2024, 3, 5, 1, 0, tzinfo=UTC)),
    ]
    btc = vectors[0].as_dict()
    candle = next(
        r
        for r in load("upbit_candles_minutes_60_KRW-BTC.json")
        if r["candle_date_time_utc"] == "2024-03-05T01:00:00"
    )
    kline = next(
        k
        for k in load("binance_klines_BTCUSDT_1h.json")
        if k[0] == int(datetime(2024, 3, 5, 1, tzinfo=UTC).timestamp() * 1000)
    )
    assert btc["prem_fx"] == pytest.approx(candle["trade_price"] / (float(kline[4]) * 1333.2) - 1, rel=1e-6)
