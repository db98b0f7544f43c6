"""The offline time-series store in PostgreSQL (``KIMP_PG_URL``): what the live loop saw and served, kept to
be audited and compared with the batch store.

Four tables (names prefixed, ``kimp_`` by default), each partitioned by UTC day on ``ts`` (the bar open):
- ``bars``: the premium rows of every bar the engine closed (both definitions, the closes, USD/KRW);
- ``served_features``: every served feature vector (``ts``, ``coin``, the catalog's feature columns as float4,
  then ``served_at``, ``kr_venue``, ``feature_set``, ``known_at``, ``tick``);
- ``predictions``: the champion's probabilities per bar; ``signals``: the target position derived from them.

With the TimescaleDB extension available the tables are hypertables with one-day chunks, compression after
7 days and a 2-year retention policy. Without it (plain PostgreSQL, as here) they are declaratively
partitioned by range on ``ts``: a day's partition is created before its first row, and ``apply_retention``
(run by the streamer once a day) drops the partitions older than the retention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from kimp.streaming.events import FeatureVector
from kimp.streaming.online import Signal

RETENTION_DAYS = 730
COMPRESS_AFTER_DAYS = 7
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

BAR_COLUMNS = {
    "interval_s": "integer",
    "premium_fx": "double precision",
    "premium_usdt": "double precision",
    "kr_close": "double precision",
    "binance_close": "double precision",
    "usdt_krw_close": "double precision",
    "usdkrw": "double precision",
    "stale": "boolean",
}


class TimeSeriesStore:
    """Appends and reads the live loop's history; see the module docstring."""

    def __init__(
        self,
        url: str,
        feature_names: Sequence[str],
        *,
        prefix: str = "kimp",
        retention_days: int = RETENTION_DAYS,
        connection: Any = None,
    ) -> None:
        import psycopg

        bad = [n for n in feature_names if not _IDENT.match(n)]
        if bad or not _IDENT.match(prefix):
            raise ValueError(f"table and column names must be plain identifiers, got {bad or prefix!r}")
        self.conn = connection if connection is not None else psycopg.connect(url, autocommit=True)
        self.prefix = prefix
        self.names = tuple(feature_names)
        self.retention_days = retention_days
        self._days: dict[str, set[date]] = {}
        self.timescale = self._has_timescale()
        self.create()

    # ------------------------------------------------------------------ schema
    def table(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def _has_timescale(self) -> bool:
        row = self.conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        return row is not None

    def _columns(self) -> dict[str, str]:
        features = ", ".join(f'"{n}" real' for n in self.names)
        return {
            "bars": "ts timestamptz NOT NULL, coin text NOT NULL, kr_venue text NOT NULL, "
            + ", ".join(f"{c} {t}" for c, t in BAR_COLUMNS.items()),
            "served_features": f"ts timestamptz NOT NULL, coin text NOT NULL, {features}, served_at timestamptz "
            "NOT NULL, kr_venue text NOT NULL, feature_set text NOT NULL, known_at timestamptz NOT NULL, "
            "tick boolean NOT NULL",
            "predictions": "ts timestamptz NOT NULL, coin text NOT NULL, kr_venue text NOT NULL, model text NOT NULL, "
            "model_version text NOT NULL, horizon integer NOT NULL, p_down double precision, p_flat double "
            "precision, p_up double precision, feature_ts timestamptz NOT NULL, predicted_at timestamptz NOT NULL",
            "signals": "ts timestamptz NOT NULL, coin text NOT NULL, kr_venue text NOT NULL, model text NOT NULL, "
            "model_version text NOT NULL, horizon integer NOT NULL, target_position double precision NOT NULL, "
            "feature_set text NOT NULL, written_at timestamptz NOT NULL",
        }

    def create(self) -> None:
        if self.timescale:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for name, columns in self._columns().items():
            table = self.table(name)
            if self.timescale:
                self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
                self.conn.execute(
                    f"SELECT create_hypertable('{table}', 'ts', chunk_time_interval => INTERVAL '1 day', "
                    "if_not_exists => TRUE)"
                )
                self.conn.execute(
                    f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'coin')"
                )
                self.conn.execute(
                    f"SELECT add_compression_policy('{table}', INTERVAL '{COMPRESS_AFTER_DAYS} days', if_not_exists => TRUE)"
                )
                self.conn.execute(
                    f"SELECT add_retention_policy('{table}', INTERVAL '{self.retention_days} days', if_not_exists => TRUE)"
                )
            else:
                self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns}) PARTITION BY RANGE (ts)")
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_coin_ts ON {table} (coin, ts)")

    def _partition(self, name: str, day: date) -> str:
        return f"{self.table(name)}_p{day:%Y%m%d}"

    def ensure_days(self, name: str, days: Iterable[date]) -> None:
        """Create the day partitions rows are about to land in (declarative partitioning only)."""
        if self.timescale:
            return
        known = self._days.setdefault(name, set())
        for day in sorted(set(days) - known):
            lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._partition(name, day)} PARTITION OF {self.table(name)} "
                f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{(lo + timedelta(days=1)).isoformat()}')"
            )
            known.add(day)

    def partitions(self, name: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s ORDER BY 1",
            (self.table(name),),
        ).fetchall()
        return [r[0] for r in rows]

    def apply_retention(self, now: datetime | None = None) -> list[str]:
        """Drop the day partitions older than the retention (TimescaleDB's policy does it by itself)."""
        if self.timescale:
            return []
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=self.retention_days)).date()
        dropped = []
        for name in self._columns():
            for part in self.partitions(name):
                day = datetime.strptime(part.rsplit("_p", 1)[1], "%Y%m%d").date()
                if day < cutoff:
                    self.conn.execute(f"DROP TABLE {part}")
                    self._days.get(name, set()).discard(day)
                    dropped.append(part)
        return dropped

    # ------------------------------------------------------------------ writes
    def _copy(self, name: str, columns: Sequence[str], rows: list[tuple]) -> None:
        if not rows:
            return
        self.ensure_days(name, {r[0].astimezone(UTC).date() for r in rows})
        cols = ", ".join(f'"{c}"' for c in columns)
        with self.conn.cursor() as cur, cur.copy(f"COPY {self.table(name)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def append_vectors(self, vectors: Iterable[FeatureVector], served_at: datetime | None = None) -> int:
        rows = []
        for v in vectors:
            values = [None if np.isnan(x) else float(x) for x in v.values]
            rows.append(
                (
                    v.ts,
                    v.coin,
                    *values,
                    served_at or v.computed_at,
                    v.kr_venue,
                    v.feature_set,
                    v.known_at,
                    v.tick,
                )
            )
        columns = ["ts", "coin", *self.names, "served_at", "kr_venue", "feature_set", "known_at", "tick"]
        self._copy("served_features", columns, rows)
        return len(rows)

    def append_bars(self, premium: pl.DataFrame) -> int:
        columns = ["ts", "coin", "kr_venue", *BAR_COLUMNS]
        rows = list(premium.select(columns).iter_rows())
        self._copy("bars", columns, rows)
        return len(rows)

    def append_signal(self, signal: Signal) -> None:
        now = signal.written_at
        self._copy(
            "predictions",
            [
                "ts",
                "coin",
                "kr_venue",
                "model",
                "model_version",
                "horizon",
                "p_down",
                "p_flat",
                "p_up",
                "feature_ts",
                "predicted_at",
            ],
            [
                (
                    signal.ts,
                    signal.coin,
                    signal.kr_venue,
                    signal.model,
                    signal.model_version,
                    signal.horizon,
                    signal.p_down,
                    signal.p_flat,
                    signal.p_up,
                    signal.feature_ts,
                    now,
                )
            ],
        )
        self._copy(
            "signals",
            [
                "ts",
                "coin",
                "kr_venue",
                "model",
                "model_version",
                "horizon",
                "target_position",
                "feature_set",
                "written_at",
            ],
            [
                (
                    signal.ts,
                    signal.coin,
                    signal.kr_venue,
                    signal.model,
                    signal.model_version,
                    signal.horizon,
                    signal.target_position,
                    signal.feature_set,
                    now,
                )
            ],
        )

    # ------------------------------------------------------------------ reads
    def read(self, name: str, *, start: datetime | None = None, end: datetime | None = None) -> pl.DataFrame:
        where, params = [], []
        if start is not None:
            where.append("ts >= %s")
            params.append(start)
        if end is not None:
            where.append("ts < %s")
            params.append(end)
        sql = (
            f"SELECT * FROM {self.table(name)}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY ts, coin"
        )
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            columns = [d.name for d in cur.description]
            rows = cur.fetchall()
        return pl.DataFrame(rows, schema=columns, orient="row", infer_schema_length=None)

    def close(self) -> None:
        self.conn.close()
