"""Find and classify the files under a data folder, by name only (contents are read lazily, per use).

Naming rules (case-insensitive venue, pair upper case):
- candles: ``{venue}_{BASE}{QUOTE}_{interval}*.{csv,csv.gz,json,json.gz,jsonl,jsonl.gz,zip}``,
  venue in upbit|bithumb|binance, interval like 1m/5m/15m/1h/4h/1d/1w (``daily`` = 1d, ``hourly`` = 1h);
  quote in KRW, USDT, USD, BTC. Other venues (bitstamp_, coinone_ ...) are ignored (logged at debug).
- Binance's own kline files: ``BTCUSDT-1m-2024-01-01.{zip,csv}`` (also monthly ``BTCUSDT-1m-2024-01.zip``).
- FX: any data file whose name contains ``USDKRW`` and ``daily``.
- order books: ``{venue}_{BASE}{QUOTE}_orderbook*.jsonl[.gz]``.
- news: any other CSV whose header has ``published_at`` and ``title``.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kimp.market_data.schemas import VENUES

log = logging.getLogger(__name__)

FileKind = Literal["candles", "fx", "orderbook", "news"]

QUOTES: tuple[str, ...] = ("USDT", "KRW", "USD", "BTC")
DATA_SUFFIXES: tuple[str, ...] = (
    ".csv",
    ".csv.gz",
    ".json",
    ".json.gz",
    ".jsonl",
    ".jsonl.gz",
    ".zip",
)
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_WORD_INTERVALS = {"daily": 86400, "hourly": 3600, "minute": 60, "weekly": 604800}

_CANDLE_RE = re.compile(
    r"^([A-Za-z]+)_([A-Za-z0-9]+)_([0-9]+(?:min|[smhdwMHDW])|daily|hourly|minute|weekly)(?=$|[_.\-])",
    re.IGNORECASE,
)
_ORDERBOOK_RE = re.compile(r"^([A-Za-z]+)_([A-Za-z0-9]+)_orderbook", re.IGNORECASE)
_BINANCE_NATIVE_RE = re.compile(r"^([A-Z0-9]+)-([0-9]+[smhdw])-(\d{4}-\d{2}(?:-\d{2})?)$")


@dataclass(frozen=True)
class FileSpec:
    """One data file and what its name says it holds."""

    path: Path
    label: str  # path relative to the data folder (posix), used in every message
    kind: FileKind
    venue: str | None = None
    base: str | None = None
    quote: str | None = None
    interval_s: int | None = None
    binance_native: bool = False

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"


@dataclass
class Catalog:
    """Everything found under a data folder, grouped for the source's calls."""

    candles: dict[str, dict[tuple[str, int], list[FileSpec]]] = field(default_factory=dict)
    fx: list[FileSpec] = field(default_factory=list)
    orderbook: list[FileSpec] = field(default_factory=list)
    news: list[FileSpec] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def split_pair(pair: str) -> tuple[str, str] | None:
    """``BTCKRW`` -> (BTC, KRW); ``USDTKRW`` -> (USDT, KRW); ``BTC-KRW`` too. None when no known quote."""
    p = pair.upper().replace("-", "")
    for q in QUOTES:
        if p.endswith(q) and len(p) > len(q):
            return p[: -len(q)], q
    return None


def parse_interval(text: str) -> int | None:
    """'1m' -> 60, '4h' -> 14400, '1d'/'daily' -> 86400. Upper-case 'M' (months) is not supported: None."""
    low = text.lower()
    if low in _WORD_INTERVALS:
        return _WORD_INTERVALS[low]
    m = re.fullmatch(r"([0-9]+)(min|[smhdwMHDW])", text)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    if unit == "M":  # Binance's month: not a fixed length
        return None
    secs = n * _UNIT_S[unit.lower()]
    return secs if secs > 0 else None


def data_stem(name: str) -> str | None:
    """The name without a known data suffix, or None when the suffix is not a data one."""
    low = name.lower()
    for suf in sorted(DATA_SUFFIXES, key=len, reverse=True):
        if low.endswith(suf):
            return name[: -len(suf)]
    return None


def _csv_header(path: Path) -> list[str]:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
                first = fh.readline()
        else:
            with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
                first = fh.readline()
    except (OSError, EOFError):
        return []
    return [c.strip().strip('"').lower() for c in first.strip().split(",")]


def classify(path: Path, root: Path) -> FileSpec | None:
    """What ``path`` holds according to its name (and, for news, its header); None when not ours."""
    label = path.relative_to(root).as_posix()
    stem = data_stem(path.name)
    if stem is None:
        return None
    upper = stem.upper()
    if "USDKRW" in upper and "DAILY" in upper:
        return FileSpec(path=path, label=label, kind="fx", interval_s=86400)

    m = _ORDERBOOK_RE.match(stem)
    if m:
        venue = m.group(1).lower()
        pair = split_pair(m.group(2))
        if venue not in VENUES or pair is None:
            log.debug(
                "ignoring order-book file %s: venue %r or pair %r not supported", label, venue, m.group(2)
            )
            return None
        return FileSpec(path=path, label=label, kind="orderbook", venue=venue, base=pair[0], quote=pair[1])

    m = _CANDLE_RE.match(stem)
    if m:
        venue = m.group(1).lower()
        if venue not in VENUES:
            log.debug("ignoring %s: venue %r is not one of %s", label, venue, VENUES)
            return None
        pair = split_pair(m.group(2))
        interval = parse_interval(m.group(3))
        if pair is None or interval is None:
            log.warning(
                "ignoring %s: cannot read pair %r (quote must be one of %s) or interval %r",
                label,
                m.group(2),
                QUOTES,
                m.group(3),
            )
            return None
        return FileSpec(
            path=path,
            label=label,
            kind="candles",
            venue=venue,
            base=pair[0],
            quote=pair[1],
            interval_s=interval,
        )

    m = _BINANCE_NATIVE_RE.match(stem)
    if m and path.name.lower().endswith((".zip", ".csv")):
        pair = split_pair(m.group(1))
        interval = parse_interval(m.group(2))
        if pair is None or interval is None:
            log.warning("ignoring Binance kline file %s: unknown pair or interval", label)
            return None
        return FileSpec(
            path=path,
            label=label,
            kind="candles",
            venue="binance",
            base=pair[0],
            quote=pair[1],
            interval_s=interval,
            binance_native=True,
        )

    if path.name.lower().endswith((".csv", ".csv.gz")):
        header = _csv_header(path)
        if "published_at" in header and "title" in header:
            return FileSpec(path=path, label=label, kind="news")
    log.debug("ignoring %s: name matches no known data file", label)
    return None


def discover(root: Path) -> Catalog:
    """Walk ``root`` recursively (hidden files and folders skipped) and classify every file."""
    cat = Catalog()
    groups: dict[str, dict[tuple[str, int], list[FileSpec]]] = defaultdict(lambda: defaultdict(list))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            spec = classify(path, root)
            if spec is None:
                cat.ignored.append(path.relative_to(root).as_posix())
            elif spec.kind == "candles":
                assert spec.venue is not None and spec.interval_s is not None
                groups[spec.venue][(spec.symbol, spec.interval_s)].append(spec)
            elif spec.kind == "fx":
                cat.fx.append(spec)
            elif spec.kind == "orderbook":
                cat.orderbook.append(spec)
            else:
                cat.news.append(spec)
    cat.candles = {
        venue: {key: sorted(specs, key=lambda s: s.label) for key, specs in sorted(by_key.items())}
        for venue, by_key in sorted(groups.items())
    }
    return cat
