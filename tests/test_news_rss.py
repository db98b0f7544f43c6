"""Live news from RSS / Atom feeds: parsing, times in UTC, the per-day archive, real HTTP on loopback."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from kimp.market_data.rss import RssArchive, parse_feed
from kimp.market_data.schemas import NEWS

FEEDS = Path(__file__).parent / "fixtures" / "rss"
FETCHED = datetime(2025, 1, 14, 12, 0, tzinfo=UTC)


def test_rss2_items_in_utc_with_plain_text() -> None:
    frame = parse_feed((FEEDS / "coinnews_rss2.xml").read_bytes(), fetched_at=FETCHED)
    assert dict(frame.schema) == NEWS
    rows = {r["headline"]: r for r in frame.to_dicts()}
    assert len(rows) == 4  # the item without a title is skipped
    assert rows["Bitcoin Slides Below $94,000 as ETF Outflows Mount"]["ts"] == datetime(
        2025, 1, 14, 9, 40, 12, tzinfo=UTC
    )
    # -0500 converted: Mon 22:30 New York is Tue 03:30 UTC
    assert rows["Ethereum Developers Set Date for Next Upgrade"]["ts"] == datetime(
        2025, 1, 14, 3, 30, tzinfo=UTC
    )
    # no date: known when fetched, never earlier
    assert rows["Market Wrap: Crypto Traders Await US Inflation Data"]["ts"] == FETCHED
    assert rows["Bitcoin Slides Below $94,000 as ETF Outflows Mount"]["text"] == (
        "Spot bitcoin ETFs saw $580 million of outflows & the price fell."
    )
    assert set(frame["source"]) == {"Coin News Daily"}


def test_atom_published_updated_and_future_items() -> None:
    frame = parse_feed((FEEDS / "krnews_atom.xml").read_bytes(), fetched_at=FETCHED, source="KCW")
    ts = dict(zip(frame["headline"], frame["ts"], strict=True))
    assert ts["Kimchi Premium Widens to 3.1% as Korean Retail Returns to Bithumb"] == datetime(
        2025, 1, 14, 9, 20, tzinfo=UTC
    )
    assert ts["Financial Services Commission Reviews Exchange Rules in Seoul"] == datetime(
        2025, 1, 13, 14, 50, tzinfo=UTC
    )
    assert ts["Scheduled: Bithumb Maintenance Window Announced"] == FETCHED  # dated ahead: clipped
    assert frame["source"].unique().to_list() == ["KCW"]
    with pytest.raises(ValueError, match="not an RSS/Atom feed"):
        parse_feed(b"<html><body>503 Service Unavailable</body>", fetched_at=FETCHED)


@pytest.fixture
def feed_server() -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(FEEDS))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_archive_fetches_over_http_dedupes_and_reports_failures(tmp_path: Path, feed_server: str) -> None:
    feeds = [f"{feed_server}/coinnews_rss2.xml", f"{feed_server}/krnews_atom.xml", f"{feed_server}/gone.xml"]
    archive = RssArchive(tmp_path / "news", feeds, clock=lambda: FETCHED)
    report = archive.fetch()
    assert (
        report.feeds_ok == feeds[:2]
        and list(report.failures) == [feeds[2]]
        and "404" in report.failures[feeds[2]]
    )
    day = archive.news(date(2025, 1, 14))
    # the syndicated copy of the bitcoin headline (later, from the Atom feed) is dropped: earliest kept
    slides = day.filter(pl.col("headline").str.starts_with("Bitcoin Slides"))
    assert slides.height == 1 and slides["source"][0] == "Coin News Daily"
    assert archive.news(date(2025, 1, 13))["headline"].to_list() == [
        "Financial Services Commission Reviews Exchange Rules in Seoul"
    ]
    assert report.new_items == 7 and archive.fetch().new_items == 0  # polling again adds nothing
    assert archive.news(date(2024, 12, 1)).height == 0


def test_exchange_source_polls_feeds_for_recent_days(tmp_path: Path, feed_server: str) -> None:
    from kimp.market_data.exchange import ExchangeSource

    archive = RssArchive(tmp_path / "news", [f"{feed_server}/coinnews_rss2.xml"], clock=lambda: FETCHED)
    source = ExchangeSource(news_archive=archive, clock=lambda: FETCHED)
    assert source.provides("news") and not ExchangeSource().provides("news")
    assert source.news(date(2025, 1, 14)).height == 4
    assert source.news(date(2025, 1, 10)).height == 0  # an old day is read from the archive, not fetched
