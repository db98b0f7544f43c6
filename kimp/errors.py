"""Errors that name what went wrong, where, and what was expected."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl


class KimpError(Exception):
    """Base class for kimp's own errors."""


class MarketDataError(KimpError):
    """Bad or missing market data.

    The message always names the source, the partition (day) and the offending rows, and says what was
    expected, so that a failed Dagster run tells the user exactly where to look.
    """

    def __init__(
        self,
        *,
        source: str,
        partition: date | str | None,
        problem: str,
        expected: str,
        rows: pl.DataFrame | Sequence[object] | None = None,
        max_rows: int = 10,
    ) -> None:
        self.source = source
        self.partition = str(partition) if partition is not None else None
        self.problem = problem
        self.expected = expected
        self.rows = rows
        where = f"[{source}]" + (f" partition {self.partition}" if self.partition else "")
        parts = [f"{where}: {problem}", f"expected: {expected}"]
        if rows is not None and len(rows) > 0:
            parts.append(f"offending rows ({len(rows)}): {_render_rows(rows, max_rows)}")
        super().__init__("\n".join(parts))

    def paragraph(self, max_rows: int = 3) -> str:
        """The error as one paragraph for a terminal: source, partition, problem, the first offending rows
        (file, line, column or field, value) and what was expected."""
        where = f"[{self.source}]" + (f" partition {self.partition}" if self.partition else "")
        rows = _brief_rows(self.rows, max_rows) if self.rows is not None and len(self.rows) > 0 else ""
        problem = self.problem.rstrip(". ")
        return (
            f"{where}: {problem}"
            + (f" ({rows})" if rows else "")
            + f". Expected: {self.expected.rstrip('. ')}."
        )


def _brief_rows(rows: pl.DataFrame | Sequence[object], max_rows: int) -> str:
    """'line 12, column 'close', value '5001x000.0'; line 40, ...' (the first rows, in words)."""
    if not isinstance(rows, pl.DataFrame):
        items = [str(r) for r in list(rows)[:max_rows]]
        more = len(rows) - len(items)
        return "; ".join(items) + (f"; {more} more" if more > 0 else "")
    described = []
    for row in rows.head(max_rows).to_dicts():
        words = []
        if row.get("file") is not None:
            words.append(f"file {row['file']}")
        if row.get("line") is not None:
            words.append(f"line {row['line']}")
        if "column" in row:
            words.append(f"column {row['column']!r}, value {row.get('value')!r}")
        elif "fields" in row:
            words.append(f"{row['fields']} fields: {row.get('value')!r}")
        else:
            shown = {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in row.items()
                if k not in ("file", "line", "problem") and v is not None
            }
            words += [f"{k} {v!r}" if isinstance(v, str) else f"{k} {v}" for k, v in shown.items()]
            if row.get("problem"):
                words.append(f"problem: {row['problem']}")
        described.append(", ".join(words))
    more = rows.height - len(described)
    return "; ".join(described) + (f"; {more} more row(s)" if more > 0 else "")


def _render_rows(rows: pl.DataFrame | Sequence[object], max_rows: int) -> str:
    if isinstance(rows, pl.DataFrame):
        with pl.Config(tbl_rows=max_rows, tbl_cols=12, fmt_str_lengths=40, tbl_width_chars=160):
            return "\n" + str(rows.head(max_rows))
    shown = ", ".join(str(r) for r in list(rows)[:max_rows])
    more = f" ... (+{len(rows) - max_rows} more)" if len(rows) > max_rows else ""
    return shown + more
