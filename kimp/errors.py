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


def _render_rows(rows: pl.DataFrame | Sequence[object], max_rows: int) -> str:
    if isinstance(rows, pl.DataFrame):
        with pl.Config(tbl_rows=max_rows, tbl_cols=12, fmt_str_lengths=40, tbl_width_chars=160):
            return "\n" + str(rows.head(max_rows))
    shown = ", ".join(str(r) for r in list(rows)[:max_rows])
    more = f" ... (+{len(rows) - max_rows} more)" if len(rows) > max_rows else ""
    return shown + more
