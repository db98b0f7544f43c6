"""Which days of a files-source folder changed: the domain half of the new-files sensor."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from kimp.market_data.files.discovery import discover
from kimp.market_data.files.source import load_file, parse_candle_file, parse_fx_file


def snapshot(data_dir: str | Path) -> dict[str, str]:
    """Every candle and FX file the files source would read: label -> 'mtime_ns:size'."""
    catalog = discover(Path(data_dir))
    specs = [
        s for groups in catalog.candles.values() for specs in groups.values() for s in specs
    ] + catalog.fx
    out = {}
    for spec in specs:
        st = spec.path.stat()
        out[spec.label] = f"{st.st_mtime_ns}:{st.st_size}"
    return out


def changed_files(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    return sorted(label for label, sig in current.items() if previous.get(label) != sig)


def days_touched(data_dir: str | Path, labels: list[str]) -> set[date]:
    """UTC days holding at least one row of the given files (bar open time, or the FX value date)."""
    catalog = discover(Path(data_dir))
    wanted = set(labels)
    days: set[date] = set()
    candle_specs = [s for groups in catalog.candles.values() for specs in groups.values() for s in specs]
    for specs, parse in ((candle_specs, parse_candle_file), (catalog.fx, parse_fx_file)):
        for spec in specs:
            if spec.label in wanted:
                frame = load_file(spec, parse)
                days.update(frame["ts"].dt.date().unique().to_list())
    return days


def digest(current: dict[str, str], labels: list[str]) -> str:
    """A short, stable fingerprint of the changed files' versions: part of idempotent run keys."""
    text = "\n".join(f"{label}={current[label]}" for label in labels)
    return hashlib.sha1(text.encode()).hexdigest()[:12]
