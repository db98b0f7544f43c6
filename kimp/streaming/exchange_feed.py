"""The live exchange feed: candles and order books from Upbit, Bithumb and Binance through ccxt.

- Candles: REST polling (``fetch_ohlcv``) of every market every ``poll_s``; a bar is closed (its candles and
  a ``BarClose`` emitted) once every market has returned it, or ``grace_s`` after its close without the
  laggards (their rows are then missing, as in a stored day with a gap). ccxt's rate limiter stays on.
- Order books: REST polling (``fetch_order_book``) every ``book_every_s``, or, with ``websocket=True``, the
  venues' websocket streams through ccxt.pro (``watch_order_book``; all three venues support it) in a
  background thread: each poll emits the books that changed since the last one.
- FX: a daily USD/KRW source (``fx``: e.g. ExchangeSource.fx, the ECB or a file) read again every hour; rows
  are emitted once, when their ``published_at`` has passed.

``poll()`` is one round at the clock's time and returns the events it produced, so tests drive the feed with
recorded exchange answers and a fake clock (tests/test_streaming_feeds.py); ``events()`` loops forever.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from kimp.market_data.exchange import DEFAULT_SYMBOLS, make_exchange, ohlcv_frame, timeframe_seconds
from kimp.market_data.schemas import BOOK_LEVELS, ORDERBOOK
from kimp.streaming.events import BarClose, Event, Rows

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(tz=UTC)


def book_row(venue: str, symbol: str, book: Mapping[str, Any], fallback_ms: int) -> dict[str, Any]:
    """A ccxt unified order book as one ORDERBOOK row (10 levels; absent levels null)."""
    ms = book.get("timestamp") or fallback_ms
    row: dict[str, Any] = {"ts": datetime.fromtimestamp(ms / 1000, UTC), "venue": venue, "symbol": symbol}
    for side, key in (("bid", "bids"), ("ask", "asks")):
        levels = book.get(key) or []
        for i in range(BOOK_LEVELS):
            px, sz = (levels[i][0], levels[i][1]) if i < len(levels) else (None, None)
            row[f"{side}_px_{i + 1}"] = None if px is None else float(px)
            row[f"{side}_sz_{i + 1}"] = None if sz is None else float(sz)
    return row


class _WebsocketBooks:
    """ccxt.pro ``watch_order_book`` loops in a background thread; ``latest`` holds each market's newest book."""

    def __init__(self, factory: Callable[[str], Any], symbols: Mapping[str, Sequence[str]]) -> None:
        self.factory, self.symbols = factory, symbols
        self.latest: dict[tuple[str, str], dict[str, Any]] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kimp-ws-books", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def take(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self._lock:
            out, self.latest = self.latest, {}
        return out

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        exchanges = {venue: self.factory(venue) for venue in self.symbols}
        tasks = [
            asyncio.create_task(self._watch(venue, ex, symbol))
            for venue, ex in exchanges.items()
            for symbol in self.symbols[venue]
        ]
        while not self._stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        for ex in exchanges.values():
            await ex.close()

    async def _watch(self, venue: str, ex: Any, symbol: str) -> None:
        while not self._stop.is_set():
            try:
                book = await ex.watch_order_book(symbol, BOOK_LEVELS)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a dropped connection: ccxt.pro reconnects on the next watch
                self.errors.append(f"{venue} {symbol}: {type(e).__name__}: {e}")
                log.warning("websocket order book %s %s: %s", venue, symbol, e)
                await asyncio.sleep(1.0)
                continue
            with self._lock:
                self.latest[(venue, symbol)] = {
                    "timestamp": book.get("timestamp"),
                    "bids": book["bids"][:BOOK_LEVELS],
                    "asks": book["asks"][:BOOK_LEVELS],
                }


def make_pro_exchange(venue: str) -> Any:
    import ccxt.pro

    return getattr(ccxt.pro, venue)({"enableRateLimit": True})


class ExchangeFeed:
    """Live candles, books and FX; see the module docstring."""

    name = "exchange"

    def __init__(
        self,
        *,
        timeframe: str = "1m",
        symbols: Mapping[str, Sequence[str]] | None = None,
        factory: Callable[[str], Any] = make_exchange,
        fx: Callable[[date], pl.DataFrame] | None = None,
        book_every_s: float = 5.0,
        websocket: bool = False,
        ws_factory: Callable[[str], Any] = make_pro_exchange,
        poll_s: float = 2.0,
        grace_s: float = 30.0,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeframe = timeframe
        self.interval_s = timeframe_seconds(timeframe)
        self.symbols = {v: tuple(s) for v, s in (symbols or DEFAULT_SYMBOLS).items()}
        self.markets = [(v, s) for v, syms in self.symbols.items() for s in syms]
        self.factory, self.fx, self.clock, self.sleep = factory, fx, clock, sleep
        self.book_every_s, self.poll_s, self.grace_s = book_every_s, poll_s, grace_s
        self._exchanges: dict[str, Any] = {}
        self._last_bar: datetime | None = None  # newest bar closed (emitted)
        self._pending: dict[datetime, dict[tuple[str, str], pl.DataFrame]] = {}
        self._last_books = datetime.min.replace(tzinfo=UTC)
        self._fx_seen: set[tuple[Any, ...]] = set()
        self._fx_read: datetime | None = None
        self._fx_rows: pl.DataFrame | None = None
        self._ws = _WebsocketBooks(ws_factory, self.symbols) if websocket else None
        self.errors: list[str] = []

    # ------------------------------------------------------------------ one round
    def poll(self) -> list[Event]:
        now = self.clock()
        events: list[Event] = []
        events += self._fx_events(now)
        events += self._book_events(now)
        events += self._candle_events(now)
        return events

    def events(self) -> Iterator[Event]:
        if self._ws is not None:
            self._ws.start()
        try:
            while True:
                yield from self.poll()
                self.sleep(self.poll_s)
        finally:
            if self._ws is not None:
                self._ws.stop()

    # ------------------------------------------------------------------ candles
    def _exchange(self, venue: str) -> Any:
        if venue not in self._exchanges:
            self._exchanges[venue] = self.factory(venue)
        return self._exchanges[venue]

    def _floor(self, t: datetime) -> datetime:
        s = int(t.timestamp()) // self.interval_s * self.interval_s
        return datetime.fromtimestamp(s, UTC)

    def _candle_events(self, now: datetime) -> list[Event]:
        iv = timedelta(seconds=self.interval_s)
        newest_closed = self._floor(now) - iv  # the last bar whose close has passed
        if self._last_bar is None:
            self._last_bar = (
                newest_closed - iv
            )  # start with the bar that closed last (history is the warm-up's)
        since_ms = int((self._last_bar + iv).timestamp() * 1000)
        for venue, symbol in self.markets:
            try:
                rows = self._exchange(venue).fetch_ohlcv(symbol, self.timeframe, since=since_ms, limit=100)
            except Exception as e:  # a failed poll is retried next round; the grace period decides
                self.errors.append(f"{venue} {symbol} candles: {type(e).__name__}: {e}")
                log.warning("candles %s %s: %s", venue, symbol, e)
                continue
            frame = ohlcv_frame(rows, venue, symbol, self.interval_s)
            frame = frame.filter((pl.col("ts") > self._last_bar) & (pl.col("ts") <= newest_closed))
            for part in frame.partition_by("ts"):
                self._pending.setdefault(part["ts"][0], {})[(venue, symbol)] = part
        events: list[Event] = []
        bar = self._last_bar + iv
        while bar <= newest_closed:
            got = self._pending.get(bar, {})
            late = now >= bar + iv + timedelta(seconds=self.grace_s)
            if len(got) < len(self.markets) and not late:
                break  # wait for the laggards (a venue publishes its bar a few seconds after the close)
            if got:
                events.append(Rows("candles", pl.concat(list(got.values())), now))
            events.append(BarClose(bar, self.interval_s))
            self._pending.pop(bar, None)
            self._last_bar = bar
            bar += iv
        return events

    # ------------------------------------------------------------------ books
    def _book_events(self, now: datetime) -> list[Event]:
        now_ms = int(now.timestamp() * 1000)
        if self._ws is not None:
            books = self._ws.take()
        else:
            if (now - self._last_books).total_seconds() < self.book_every_s:
                return []
            self._last_books = now
            books = {}
            for venue, symbol in self.markets:
                try:
                    books[(venue, symbol)] = self._exchange(venue).fetch_order_book(symbol, BOOK_LEVELS)
                except Exception as e:
                    self.errors.append(f"{venue} {symbol} book: {type(e).__name__}: {e}")
                    log.warning("order book %s %s: %s", venue, symbol, e)
        if not books:
            return []
        rows = [book_row(v, s, b, now_ms) for (v, s), b in books.items()]
        # a book is known when it is received: a venue's clock ahead of ours must not date it in the future
        frame = pl.DataFrame(rows, schema=ORDERBOOK, orient="row").with_columns(
            ts=pl.min_horizontal(pl.col("ts"), pl.lit(now, ORDERBOOK["ts"]))
        )
        return [Rows("orderbook", frame, now)]

    # ------------------------------------------------------------------ FX
    def _fx_events(self, now: datetime) -> list[Event]:
        if self.fx is None:
            return []
        if self._fx_read is None or now - self._fx_read >= timedelta(hours=1):
            frames = []
            for d in (now.date() - timedelta(days=1), now.date()):
                try:
                    frames.append(self.fx(d))
                except Exception as e:
                    self.errors.append(f"fx {d}: {type(e).__name__}: {e}")
            self._fx_rows = (
                pl.concat([f for f in frames if f.height], how="vertical_relaxed")
                if any(f.height for f in frames)
                else None
            )
            self._fx_read = now
        if self._fx_rows is None:
            return []
        due = self._fx_rows.filter(pl.col("published_at") <= now)
        fresh = [r for r in due.iter_rows() if r not in self._fx_seen]
        if not fresh:
            return []
        self._fx_seen.update(fresh)
        return [Rows("fx", pl.DataFrame(fresh, schema=due.schema, orient="row"), now)]
