"""Live crypto news from public RSS / Atom feeds (feedparser), archived per UTC day for the daily partitions.

A feed only lists its latest items, so news cannot be fetched for a past day: ``RssArchive.fetch`` downloads
every configured feed, parses it and adds the items it has not seen to one Parquet file per UTC day
(``news-YYYY-MM-DD.parquet``); ``RssArchive.news(day)`` reads a day back in the NEWS schema. Polling it
regularly (the exchange source does it when asked for today's or yesterday's news) builds the history.

Time of an item (``ts``, what features join on): the publisher's time (``published``, else ``updated``),
converted to UTC. An item without a time gets the fetch time; one dated in the future (beyond a 5-minute
clock skew) is clipped to the fetch time: no row is ever stamped earlier than it could have been read, and
none later than it was public. Duplicates (the same headline, from one feed or syndicated by another) keep their earliest row.
A feed that fails (network, HTTP status, unparsable XML) is reported and skipped; the others still count.
"""

from __future__ import annotations

import calendar
import html
import logging
import re
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from kimp.market_data.schemas import NEWS, conform, empty
from kimp.timeutil import in_day

log = logging.getLogger(__name__)
CLOCK_SKEW = timedelta(minutes=5)
USER_AGENT = "kimp-news/0.1 (+https://github.com/kimp; RSS reader)"
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")

Fetch = Callable[[str], bytes]


def _plain(value: str | None) -> str | None:
    if not value:
        return None
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", value))).strip()
    return text or None


def _entry_time(entry: object, fetched_at: datetime) -> datetime:
    parsed = getattr(entry, "get", lambda _k: None)("published_parsed") or getattr(
        entry, "get", lambda _k: None
    )("updated_parsed")
    if not parsed:
        return fetched_at
    ts = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)  # feedparser gives UTC struct_time
    return fetched_at if ts > fetched_at + CLOCK_SKEW else ts


def parse_feed(content: bytes | str, *, fetched_at: datetime, source: str | None = None) -> pl.DataFrame:
    """The items of one feed document in the NEWS schema; raises ValueError on a document with no feed."""
    import feedparser

    if fetched_at.tzinfo is None:
        raise ValueError("fetched_at must be timezone-aware (UTC)")
    doc = feedparser.parse(content)
    if doc.bozo and not doc.entries:
        raise ValueError(f"not an RSS/Atom feed: {doc.get('bozo_exception')!r}")
    name = source or _plain(doc.feed.get("title")) or "rss"
    rows = []
    for entry in doc.entries:
        headline = _plain(entry.get("title"))
        if not headline:
            continue
        rows.append(
            {
                "ts": _entry_time(entry, fetched_at),
                "source": name,
                "headline": headline,
                "text": _plain(entry.get("summary")),
            }
        )
    if not rows:
        return empty(NEWS)
    frame = pl.DataFrame(
        rows,
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "source": pl.String,
            "headline": pl.String,
            "text": pl.String,
        },
    )
    return conform(frame.sort("ts"), NEWS, table="news")


def http_get(url: str, timeout_s: float = 20.0) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return bytes(response.read())


@dataclass
class FetchReport:
    new_items: int = 0
    feeds_ok: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # url -> what went wrong


class RssArchive:
    """Feed items archived per UTC day under ``folder``."""

    def __init__(self, folder: Path, feeds: Sequence[str] = (), *, fetch: Fetch = http_get,
                 clock: Callable[[], datetime] | None = None) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.feeds = tuple(feeds)
        self._fetch = fetch
        self._clock = clock or (lambda: datetime.now(UTC))

    def day_file(self, day: date) -> Path:
        return self.folder / f"news-{day.isoformat()}.parquet"

    def news(self, day: date) -> pl.DataFrame:
        path = self.day_file(day)
        if not path.exists():
            return empty(NEWS)
        return conform(in_day(pl.read_parquet(path), day).sort("ts"), NEWS, table="news")

    def add(self, items: pl.DataFrame) -> int:
        """Merge items into their day files; returns how many were new."""
        if items.height == 0:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        added = 0
        items = items.with_columns(_day=pl.col("ts").dt.date())
        for (day,), part in items.group_by("_day", maintain_order=True):
            old = self.news(day)  # type: ignore[arg-type]
            merged = (
                pl.concat([old, part.drop("_day")])
                .sort("ts")
                .unique(subset=["headline"], keep="first", maintain_order=True)
            )
            added += merged.height - old.height
            tmp = self.day_file(day).with_suffix(".tmp")  # type: ignore[arg-type]
            merged.write_parquet(tmp)
            tmp.replace(self.day_file(day))  # type: ignore[arg-type]
        return added

    def fetch(self) -> FetchReport:
        """Download every feed once and archive the new items; failures are reported, not raised."""
        report = FetchReport()
        fetched_at = self._clock()
        frames = []
        for url in self.feeds:
            try:
                frames.append(parse_feed(self._fetch(url), fetched_at=fetched_at))
                report.feeds_ok.append(url)
            except Exception as err:  # one broken feed must not stop the others
                report.failures[url] = f"{type(err).__name__}: {err}"
                log.warning("news feed %s failed: %s", url, report.failures[url])
        if frames:
            # an item listed by two feeds (syndication) is the same news: the earliest copy is kept
            report.new_items = self.add(pl.concat(frames))
        return report
