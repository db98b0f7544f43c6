"""Readers for each accepted file format. The format is detected from the content, not only the name.

Every reader returns plain typed columns plus ``line`` (the 1-based line of the record in the file, the header
being line 1; for a JSON list, the 1-based element number) so that a problem can point at the record. Structural
defects raise :class:`FileProblem`; row-level defects are left for :mod:`validate` to mark.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from kimp.market_data.files.discovery import FileSpec
from kimp.market_data.files.parsing import (
    FileProblem,
    bad_cells,
    epoch_to_utc,
    missing_cells,
    parse_iso_utc,
    to_float,
)
from kimp.market_data.schemas import BOOK_LEVELS, UTC_TS

Order = Literal["ascending", "either", "any"]

CANDLE_VALUE_COLS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "quote_volume")
FX_VALUE_COLS: tuple[str, ...] = ("open", "high", "low", "close")
UPBIT_FIELDS: tuple[str, ...] = (
    "market",
    "candle_date_time_utc",
    "candle_date_time_kst",
    "opening_price",
    "high_price",
    "low_price",
    "trade_price",
    "timestamp",
    "candle_acc_trade_price",
    "candle_acc_trade_volume",
    "unit",
)
KST_OFFSET_MIN = 9 * 60
# The simple candle CSV's time column and the zone of its times when they carry none (minutes east of UTC),
# in order of preference. The name says the zone; 'timestamp' without one is UTC by this format's definition
# (as ccxt-based collectors write it, e.g. the shared upbit_binance_btc_2024_2025 samples). Times with an
# offset (+09:00, Z) are read as written whatever the name; epoch integers are UTC by definition.
TIME_COLUMNS: dict[str, int] = {
    "ts_utc": 0,
    "timestamp_utc": 0,
    "datetime_utc": 0,
    "ts_kst": KST_OFFSET_MIN,
    "timestamp_kst": KST_OFFSET_MIN,
    "datetime_kst": KST_OFFSET_MIN,
    "timestamp": 0,
}
# A time column whose name states some other zone (or a local time): refused, never guessed.
_ZONED_TIME = re.compile(r"^(ts|time|timestamp|datetime|date|candle_date_time)_[a-z]+$")


@dataclass(frozen=True)
class RawTable:
    """What a reader found: typed columns (ts, values..., line) and the order its format promises."""

    frame: pl.DataFrame
    order: Order
    fmt: str


# --------------------------------------------------------------------------------------------- raw bytes


def read_payload(spec: FileSpec) -> bytes:
    """The file's bytes, gunzipped or unzipped (a zip must hold exactly one file)."""
    try:
        raw = spec.path.read_bytes()
    except FileNotFoundError as e:
        raise FileProblem(spec.label, "the file has disappeared since discovery", "the file to exist") from e
    name = spec.path.name.lower()
    if raw[:2] == b"\x1f\x8b" or name.endswith(".gz"):
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise FileProblem(
                spec.label, f"truncated or corrupt gzip data ({e})", "a complete gzip stream"
            ) from e
    if raw[:2] == b"PK" or name.endswith(".zip"):
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise FileProblem(
                        spec.label,
                        f"the zip holds {len(members)} files: {[m.filename for m in members][:5]}",
                        "a zip holding exactly one csv (as published on data.binance.vision)",
                    )
                return zf.read(members[0])
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            raise FileProblem(spec.label, f"truncated or corrupt zip ({e})", "a complete zip archive") from e
    return raw


def _text(spec: FileSpec, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FileProblem(spec.label, f"not UTF-8 text ({e})", "a UTF-8 csv or json file") from e
    if not text.strip():
        raise FileProblem(spec.label, "the file is empty", "at least one data row")
    return text


def _is_int(text: str) -> bool:
    t = text.strip().strip('"')
    return t.isdigit() and len(t) > 0


def _read_csv(spec: FileSpec, text: str, *, has_header: bool, whole_rows: bool = True) -> pl.DataFrame:
    """All columns as strings, names lower-cased, plus ``line``.

    ``whole_rows``: every row must have as many fields as the header (or, without one, as the first row):
    a row cut short would otherwise read as nulls in its last columns (a missing volume looks like an
    unknown one). An unknown value is written as an empty field ("...,1.5,")."""
    if whole_rows:
        _check_row_widths(spec, text)
    try:
        frame = pl.read_csv(
            io.StringIO(text),
            has_header=has_header,
            infer_schema=False,
            truncate_ragged_lines=False,
        )
    except (pl.exceptions.PolarsError, ValueError) as e:
        raise FileProblem(
            spec.label,
            f"cannot parse as CSV ({str(e).splitlines()[0][:200]})",
            "a well-formed comma-separated file",
        ) from e
    names = [c.strip().lower() for c in frame.columns]
    if len(set(names)) != len(names):
        raise FileProblem(spec.label, f"duplicate column names {frame.columns}", "unique column names")
    frame.columns = names
    offset = 2 if has_header else 1
    frame = frame.with_columns(pl.int_range(offset, offset + frame.height, dtype=pl.Int64).alias("line"))
    if frame.height == 0:
        raise FileProblem(spec.label, "the file has a header but no data rows", "at least one data row")
    return frame


def _check_row_widths(spec: FileSpec, text: str) -> None:
    """Raise FileProblem naming the rows whose number of fields differs from the header's."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    bad: list[tuple[int, int, str]] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines are skipped by the reader too
        if header is None:
            header = row
        elif len(row) != len(header):
            bad.append((reader.line_num, len(row), ",".join(row)[:120]))
    if not bad or header is None:
        return
    fewer = all(n < len(header) for _, n, _ in bad)
    names = ", ".join(c.strip() for c in header) if not _is_int(header[0]) else f"{len(header)} kline columns"
    raise FileProblem(
        spec.label,
        f"{len(bad)} row(s) with {'a missing field' if fewer else 'a wrong number of fields'} "
        f"(line {bad[0][0]}: {bad[0][1]} fields where the header has {len(header)})",
        f"every row with all {len(header)} fields ({names}); an unknown value is an empty field",
        pl.DataFrame(
            {"line": [b[0] for b in bad], "fields": [b[1] for b in bad], "value": [b[2] for b in bad]},
            schema={"line": pl.Int64, "fields": pl.Int64, "value": pl.String},
        ),
    )


def _require(spec: FileSpec, frame: pl.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        have = [c for c in frame.columns if c != "line"]
        raise FileProblem(
            spec.label, f"missing columns {missing} (has {have})", f"{what} with columns {cols}"
        )


def _floats(spec: FileSpec, raw: pl.DataFrame, mapping: dict[str, str | None]) -> pl.DataFrame:
    """Typed Float64 columns named by ``mapping`` keys, read from the raw string columns it names."""
    src = [s for s in mapping.values() if s is not None]
    parsed = pl.DataFrame({s: to_float(raw, s) for s in src}) if src else pl.DataFrame()
    bad = bad_cells(raw, parsed.with_columns(raw["line"]), src) if src else None
    if bad is not None and bad.height:
        raise FileProblem(spec.label, f"{bad.height} unparseable number(s)", "plain decimal numbers", bad)
    cols = {
        dst: (parsed[s] if s is not None else pl.Series(dst, [None] * raw.height, dtype=pl.Float64))
        for dst, s in mapping.items()
    }
    return pl.DataFrame({k: v.alias(k) for k, v in cols.items()})


def _timestamps(
    spec: FileSpec,
    raw: pl.DataFrame,
    col: str,
    *,
    epoch: bool = False,
    allow_seconds: bool = False,
    naive_offset_minutes: int = 0,
) -> pl.Series:
    """``col`` as UTC times: epoch integers, or ISO strings whose zone is their offset, else the column's
    (``naive_offset_minutes`` east of UTC: 0 for UTC columns, 540 for Korea time)."""
    ts = (
        epoch_to_utc(raw, col, allow_seconds=allow_seconds)
        if epoch
        else parse_iso_utc(raw, col, naive_offset_minutes=naive_offset_minutes)
    )
    bad = bad_cells(raw, pl.DataFrame({col: ts, "line": raw["line"]}), [col])
    if bad.height:
        zone = "Korea time, UTC+9" if naive_offset_minutes == KST_OFFSET_MIN else "UTC"
        what = (
            "integer open times since 1970-01-01 UTC in milliseconds or microseconds"
            + (" (or seconds)" if allow_seconds else "")
            if epoch
            else f"ISO-8601 times ({zone} when no offset is given)"
        )
        raise FileProblem(spec.label, f"{bad.height} unparseable timestamp(s) in column {col!r}", what, bad)
    missing = missing_cells(raw, [col])
    if missing.height:
        raise FileProblem(
            spec.label, f"{missing.height} row(s) without a timestamp", "a timestamp in every row", missing
        )
    return ts.alias("ts")


# --------------------------------------------------------------------------------------------- candles


def read_candles(spec: FileSpec) -> RawTable:
    """Detect the candle format of ``spec`` and read it."""
    text = _text(spec, read_payload(spec))
    head = text.lstrip()
    if head[:1] in "[{":
        return _json_candles(spec, head)
    first_line = head.split("\n", 1)[0]
    if _is_int(first_line.split(",")[0]):
        return _binance_klines(spec, _read_csv(spec, text, has_header=False))
    frame = _read_csv(spec, text, has_header=True)
    cols = set(frame.columns)
    if "open_time" in cols:
        return _binance_klines(spec, frame)
    if cols & {"candle_date_time_utc", "candle_date_time_kst", "trade_price", "opening_price"}:
        return _upbit(spec, frame)
    if "date" in cols and "close" in cols and not cols & {"ts_utc", "timestamp"}:
        return _investing(spec, frame)
    if cols & set(TIME_COLUMNS):
        return _simple(spec, frame)
    zoned = sorted(c for c in cols if _ZONED_TIME.match(c))
    if zoned:
        raise FileProblem(
            spec.label,
            f"cannot tell the time zone of column {zoned[0]!r}",
            "the zone declared by the time column's name: ts_utc (UTC) or ts_kst (Korea time, UTC+9) "
            "(timestamp_/datetime_ with _utc or _kst too), or times written with their offset "
            "(2024-01-02T09:00:00+09:00) in a column 'timestamp'",
        )
    raise FileProblem(
        spec.label,
        f"no known candle format in columns {sorted(c for c in cols if c != 'line')}",
        "one of: simple csv (ts_utc|timestamp, open, high, low, close, volume), investing.com daily "
        "(date, close, open, high, low, volume), Binance klines (12 columns, open_time first), "
        "Upbit candles (candle_date_time_utc, opening_price, ...)",
    )


def _simple(spec: FileSpec, raw: pl.DataFrame) -> RawTable:
    ts_col = next(c for c in TIME_COLUMNS if c in raw.columns)
    base, quote = (spec.base or "").lower(), (spec.quote or "").lower()
    vol = next((c for c in ("volume", f"volume_{base}") if c in raw.columns), None)
    qvol = next((c for c in ("quote_volume", f"volume_{quote}") if c in raw.columns), None)
    _require(spec, raw, ["open", "high", "low", "close"], "a simple candle csv")
    if vol is None:
        raise FileProblem(
            spec.label,
            f"missing volume column (has {[c for c in raw.columns if c != 'line']})",
            f"a base-volume column 'volume' or 'volume_{base}'",
        )
    first = raw[ts_col].drop_nulls().head(1).to_list()
    epoch = bool(first) and _is_int(str(first[0]))
    ts = _timestamps(
        spec, raw, ts_col, epoch=epoch, allow_seconds=True, naive_offset_minutes=TIME_COLUMNS[ts_col]
    )
    values = _floats(
        spec,
        raw,
        {"open": "open", "high": "high", "low": "low", "close": "close", "volume": vol, "quote_volume": qvol},
    )
    return RawTable(
        pl.concat([ts.to_frame(), values, raw.select("line")], how="horizontal"), "ascending", "simple"
    )


def _investing(spec: FileSpec, raw: pl.DataFrame) -> RawTable:
    _require(spec, raw, ["date", "open", "high", "low", "close"], "an investing.com daily csv")
    ts = _timestamps(spec, raw, "date")
    values = _floats(
        spec,
        raw,
        {
            "open": "open",
            "high": "high",
            "low": "low",
            "close": "close",
            "volume": "volume" if "volume" in raw.columns else None,
            "quote_volume": None,
        },
    )
    # investing.com exports are newest first; the shared copies are oldest first: accept either.
    return RawTable(
        pl.concat([ts.to_frame(), values, raw.select("line")], how="horizontal"), "either", "investing"
    )


def _binance_klines(spec: FileSpec, raw: pl.DataFrame) -> RawTable:
    cols = [c for c in raw.columns if c != "line"]
    if len(cols) < 6:
        raise FileProblem(
            spec.label,
            f"only {len(cols)} columns",
            "Binance kline columns open_time, open, high, low, close, volume, close_time, quote_asset_volume, ...",
        )
    names = ["open_time", "open", "high", "low", "close", "volume"] + (
        ["quote_volume"] if len(cols) >= 8 else []
    )
    picked = [cols[i] for i in (0, 1, 2, 3, 4, 5)] + ([cols[7]] if len(cols) >= 8 else [])
    frame = raw.select([pl.col(c).alias(n) for c, n in zip(picked, names, strict=True)] + [pl.col("line")])
    ts = _timestamps(spec, frame, "open_time", epoch=True)
    values = _floats(
        spec,
        frame,
        {
            "open": "open",
            "high": "high",
            "low": "low",
            "close": "close",
            "volume": "volume",
            "quote_volume": "quote_volume" if "quote_volume" in names else None,
        },
    )
    return RawTable(
        pl.concat([ts.to_frame(), values, frame.select("line")], how="horizontal"), "ascending", "binance"
    )


def _json_records(spec: FileSpec, text: str) -> tuple[list[Any], list[int]]:
    """A JSON list (lines = element numbers) or JSON lines (lines = line numbers)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
        records: list[Any] = []
        lines: list[int] = []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise FileProblem(
                    spec.label,
                    f"line {i} is not valid JSON ({e.msg})",
                    "a JSON list or one JSON object per line",
                    pl.DataFrame({"line": [i], "value": [line[:120]]}),
                ) from e
            lines.append(i)
        return records, lines
    if isinstance(doc, dict):
        if "candle_date_time_utc" in doc or "candle_date_time_kst" in doc:
            return [doc], [1]
        raise FileProblem(
            spec.label,
            f"a JSON object with keys {sorted(doc)[:8]}, not a list of candles",
            "a JSON list of candle objects (Upbit) or kline arrays (Binance)",
        )
    if not isinstance(doc, list):
        raise FileProblem(spec.label, f"JSON {type(doc).__name__}, not a list", "a JSON list of candles")
    return doc, list(range(1, len(doc) + 1))


def _json_candles(spec: FileSpec, text: str) -> RawTable:
    records, lines = _json_records(spec, text)
    if not records:
        raise FileProblem(spec.label, "the JSON holds no candles", "at least one candle")
    if all(isinstance(r, list) for r in records):  # Binance /api/v3/klines response
        width = max(len(r) for r in records)
        data = {
            f"column_{j + 1}": [None if j >= len(r) or r[j] is None else str(r[j]) for r in records]
            for j in range(width)
        }
        raw = pl.DataFrame(data, schema=dict.fromkeys(data, pl.String)).with_columns(
            pl.Series("line", lines, dtype=pl.Int64)
        )
        return _binance_klines(spec, raw)
    bad = [(ln, str(r)[:80]) for r, ln in zip(records, lines, strict=True) if not isinstance(r, dict)]
    if bad:
        raise FileProblem(
            spec.label,
            f"{len(bad)} record(s) are not JSON objects",
            "every record an Upbit candle object",
            pl.DataFrame({"line": [b[0] for b in bad], "value": [b[1] for b in bad]}),
        )
    keys = [k for k in UPBIT_FIELDS if any(k in r for r in records)]
    data = {k: [None if r.get(k) is None else str(r.get(k)) for r in records] for k in keys}
    raw = pl.DataFrame(data, schema=dict.fromkeys(keys, pl.String)).with_columns(
        pl.Series("line", lines, dtype=pl.Int64)
    )
    return _upbit(spec, raw)


def _upbit(spec: FileSpec, raw: pl.DataFrame) -> RawTable:
    cols = set(raw.columns)
    if "candle_date_time_utc" not in cols and "candle_date_time_kst" not in cols:
        _require(spec, raw, ["candle_date_time_utc"], "Upbit candles")
    _require(
        spec,
        raw,
        ["opening_price", "high_price", "low_price", "trade_price", "candle_acc_trade_volume"],
        "Upbit candles",
    )
    if "candle_date_time_utc" not in cols:
        # A dump with Korea time only (the API's candle_date_time_kst, named so): converted from UTC+9.
        ts = _timestamps(spec, raw, "candle_date_time_kst", naive_offset_minutes=KST_OFFSET_MIN)
    else:
        ts = _timestamps(spec, raw, "candle_date_time_utc")
    if "candle_date_time_kst" in cols and "candle_date_time_utc" in cols:
        kst = parse_iso_utc(raw, "candle_date_time_kst", naive_offset_minutes=KST_OFFSET_MIN)
        wrong = kst.is_null() | (kst != ts)
        if wrong.any():
            rows = raw.filter(wrong).select("line", "candle_date_time_utc", "candle_date_time_kst")
            raise FileProblem(
                spec.label,
                f"wrong time zone: in {rows.height} row(s) candle_date_time_utc != candle_date_time_kst - 9 h",
                "candle_date_time_utc (UTC) equal to candle_date_time_kst (UTC+9) minus 9 hours",
                rows,
            )
    if "market" in cols and spec.base and spec.quote:
        want = f"{spec.quote}-{spec.base}"
        other = raw.filter(pl.col("market").is_not_null() & (pl.col("market").str.to_uppercase() != want))
        if other.height:
            raise FileProblem(
                spec.label,
                f"{other.height} row(s) are for another market than the file name says ({spec.symbol})",
                f"market == {want!r} in every row",
                other.select("line", "market"),
            )
    if "unit" in cols and spec.interval_s is not None:
        unit = to_float(raw, "unit")
        want_min = spec.interval_s / 60
        off = unit.is_not_null() & (unit != want_min)
        if off.any():
            raise FileProblem(
                spec.label,
                f"the interval in the name ({spec.interval_s} s) contradicts the 'unit' field in {int(off.sum())} row(s)",
                f"unit == {want_min:g} (minutes) as the file name says",
                raw.filter(off).select(
                    "line",
                    "candle_date_time_utc" if "candle_date_time_utc" in cols else "candle_date_time_kst",
                    "unit",
                ),
            )
    values = _floats(
        spec,
        raw,
        {
            "open": "opening_price",
            "high": "high_price",
            "low": "low_price",
            "close": "trade_price",
            "volume": "candle_acc_trade_volume",
            "quote_volume": "candle_acc_trade_price" if "candle_acc_trade_price" in cols else None,
        },
    )
    # The API answers newest first; dumps are often re-sorted ascending: accept either monotone order.
    return RawTable(
        pl.concat([ts.to_frame(), values, raw.select("line")], how="horizontal"), "either", "upbit"
    )


# --------------------------------------------------------------------------------------------- fx


def read_fx(spec: FileSpec) -> RawTable:
    """Daily USD/KRW: investing.com export (date, close, open, high, low, ...), or date,close / date,usdkrw."""
    text = _text(spec, read_payload(spec))
    raw = _read_csv(spec, text, has_header=True)
    close = next((c for c in ("close", "usdkrw", "usd_krw") if c in raw.columns), None)
    if "date" not in raw.columns or close is None:
        raise FileProblem(
            spec.label,
            f"missing columns (has {[c for c in raw.columns if c != 'line']})",
            "a daily USD/KRW csv with 'date' and 'close' (investing.com: date,close,open,high,low,...) or 'usdkrw'",
        )
    ts = _timestamps(spec, raw, "date").dt.truncate("1d")
    values = _floats(
        spec,
        raw,
        {c: (c if c in raw.columns else None) for c in ("open", "high", "low")} | {"close": close},
    )
    return RawTable(pl.concat([ts.to_frame(), values, raw.select("line")], how="horizontal"), "either", "fx")


# --------------------------------------------------------------------------------------------- order books


def _levels(side: Any) -> list[tuple[Any, Any]] | None:
    if not isinstance(side, list):
        return None
    out = []
    for lvl in side:
        if isinstance(lvl, list | tuple) and len(lvl) >= 2:
            out.append((lvl[0], lvl[1]))
        elif isinstance(lvl, dict) and "price" in lvl:
            out.append((lvl.get("price"), lvl.get("size", lvl.get("amount", lvl.get("quantity")))))
        else:
            return None
    return out


def read_orderbook(spec: FileSpec) -> RawTable:
    """JSON lines of snapshots {timestamp, bids: [[px, sz], ...], asks: [...]} -> wide L10 (extra levels dropped)."""
    text = _text(spec, read_payload(spec))
    records, lines = _json_records(spec, text)
    ts_raw: list[str | None] = []
    cells: dict[str, list[str | None]] = {}
    names = [
        f"{side}_{what}_{i}"
        for side in ("bid", "ask")
        for what in ("px", "sz")
        for i in range(1, BOOK_LEVELS + 1)
    ]
    for n in names:
        cells[n] = []
    bad: list[tuple[int, str]] = []
    for rec, ln in zip(records, lines, strict=True):
        if not isinstance(rec, dict) or "timestamp" not in rec:
            bad.append((ln, "no 'timestamp'"))
            continue
        bids, asks = _levels(rec.get("bids")), _levels(rec.get("asks"))
        if bids is None or asks is None:
            bad.append((ln, "'bids'/'asks' are not lists of [price, size]"))
            continue
        ts_raw.append(None if rec["timestamp"] is None else str(rec["timestamp"]))
        for side, lvls in (("bid", bids), ("ask", asks)):
            for i in range(1, BOOK_LEVELS + 1):
                px, sz = lvls[i - 1] if i <= len(lvls) else (None, None)
                cells[f"{side}_px_{i}"].append(None if px is None else str(px))
                cells[f"{side}_sz_{i}"].append(None if sz is None else str(sz))
    if bad:
        raise FileProblem(
            spec.label,
            f"{len(bad)} malformed snapshot(s)",
            "one JSON object per line with 'timestamp' (ISO, UTC) and 'bids'/'asks' lists of [price, size]",
            pl.DataFrame({"line": [b[0] for b in bad], "value": [b[1] for b in bad]}),
        )
    raw = pl.DataFrame(
        {"timestamp": ts_raw, **cells}, schema={"timestamp": pl.String, **dict.fromkeys(names, pl.String)}
    )
    raw = raw.with_columns(pl.Series("line", lines, dtype=pl.Int64))
    ts = _timestamps(spec, raw, "timestamp")
    values = _floats(spec, raw, {n: n for n in names})
    # Sort levels: best bid first (descending), best ask first (ascending), whatever order the collector used.
    frame = pl.concat([ts.to_frame(), values, raw.select("line")], how="horizontal")
    frame = _sort_levels(frame)
    return RawTable(frame, "any", "orderbook")


def _sort_levels(frame: pl.DataFrame) -> pl.DataFrame:
    if frame.height == 0:
        return frame
    out: dict[str, list[float | None]] = {
        f"{s}_{w}_{i}": [] for s in ("bid", "ask") for w in ("px", "sz") for i in range(1, BOOK_LEVELS + 1)
    }
    for row in frame.iter_rows(named=True):
        for side, desc in (("bid", True), ("ask", False)):
            lv = [(row[f"{side}_px_{i}"], row[f"{side}_sz_{i}"]) for i in range(1, BOOK_LEVELS + 1)]
            present = [x for x in lv if x[0] is not None]
            absent = [x for x in lv if x[0] is None]
            present.sort(key=lambda x: x[0], reverse=desc)
            for i, (px, sz) in enumerate(present + absent, start=1):
                out[f"{side}_px_{i}"].append(px)
                out[f"{side}_sz_{i}"].append(sz)
    return frame.with_columns([pl.Series(k, v, dtype=pl.Float64) for k, v in out.items()])


# --------------------------------------------------------------------------------------------- news


def read_news(spec: FileSpec) -> RawTable:
    """CSV with published_at, title and optionally text, source."""
    text = _text(spec, read_payload(spec))
    # Headlines and texts are quoted and may hold commas or newlines: polars' reader handles them.
    raw = _read_csv(spec, text, has_header=True, whole_rows=False)
    _require(spec, raw, ["published_at", "title"], "a news csv")
    # published_at carries no zone in the known dataset (cryptonews): it is taken as UTC.
    ts = _timestamps(spec, raw, "published_at")
    src_default = f"files:{spec.path.name}"
    frame = pl.DataFrame(
        {
            "ts": ts,
            "source": raw["source"] if "source" in raw.columns else pl.Series([src_default] * raw.height),
            "headline": raw["title"],
            "text": raw["text"] if "text" in raw.columns else pl.Series([None] * raw.height, dtype=pl.String),
            "line": raw["line"],
        }
    ).with_columns(pl.col("source").fill_null(src_default), pl.col("ts").cast(UTC_TS))
    return RawTable(frame, "any", "news")
