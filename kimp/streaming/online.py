"""The online store: the latest feature vector and the latest signal per (coin, Korean venue).

One interface, two implementations:
- ``RedisStore`` (``KIMP_REDIS_URL``): a hash per key, written in one pipeline; shared by the streamer and any
  number of API replicas;
- ``SQLiteStore`` (the embedded default, as Feast's local online store): one file under ``$KIMP_HOME``, WAL
  mode so that a reader never blocks the writer; no server to run.

Feature vectors are versioned by the feature-set hash (kimp.features.feature_set_version): a reader asks for
the version its model was trained on and never gets a vector of another catalog. Values travel as float32
bytes in catalog order; the names of each version are stored once. A read reports the vector's age (ms since
it became known: the bar close, or the snapshot of a tick refresh) and whether it is stale.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kimp.streaming.events import FeatureVector


@dataclass(frozen=True)
class StoredVector:
    coin: str
    kr_venue: str
    feature_set: str
    ts: datetime  # bar open
    known_at: datetime  # bar close, or the snapshot time of a tick refresh
    written_at: datetime
    tick: bool
    names: tuple[str, ...]
    values: np.ndarray  # float64 (from float32), NaN = null

    def age_ms(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.known_at).total_seconds() * 1000

    def as_dict(self) -> dict[str, float | None]:
        return {n: (None if np.isnan(v) else float(v)) for n, v in zip(self.names, self.values, strict=True)}


@dataclass(frozen=True)
class Signal:
    """A model's call for one coin and Korean venue at one bar (the API's ``/v1/signal`` payload)."""

    ts: datetime  # bar open of the features it was computed from
    coin: str
    kr_venue: str
    horizon: int  # minutes
    model: str
    model_version: str
    p_down: float
    p_flat: float
    p_up: float
    target_position: float
    feature_ts: datetime  # when those features became known (bar close or tick)
    feature_set: str
    written_at: datetime

    def to_json(self) -> str:
        payload = asdict(self)
        for k in ("ts", "feature_ts", "written_at"):
            payload[k] = payload[k].isoformat()
        return json.dumps(payload)

    @classmethod
    def from_json(cls, text: str | bytes) -> Signal:
        payload = json.loads(text)
        for k in ("ts", "feature_ts", "written_at"):
            payload[k] = datetime.fromisoformat(payload[k])
        return cls(**payload)


class OnlineStore(Protocol):
    def put_vector(self, vector: FeatureVector) -> None: ...

    def get_vector(self, coin: str, kr_venue: str, feature_set: str) -> StoredVector | None: ...

    def put_signal(self, signal: Signal) -> None: ...

    def get_signal(self, coin: str, kr_venue: str) -> Signal | None: ...

    def close(self) -> None: ...


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def _dt(us: int | bytes | str) -> datetime:
    return datetime.fromtimestamp(int(us) / 1_000_000, UTC)


def _pack(vector: FeatureVector) -> bytes:
    return np.asarray(vector.values, dtype=np.float32).tobytes()


class _Names:
    """Each feature set's names, written once and cached (a vector carries only its values)."""

    def __init__(self) -> None:
        self.cache: dict[str, tuple[str, ...]] = {}
        self.written: set[str] = set()


# --------------------------------------------------------------------------------------------- Redis
class RedisStore:
    """Keys ``{prefix}:fv:{feature_set}:{coin}:{venue}`` (hash: ts, known, written, tick, values),
    ``{prefix}:fs:{feature_set}`` (names, JSON), ``{prefix}:sig:{coin}:{venue}`` (the signal, JSON)."""

    def __init__(self, url: str, *, prefix: str = "kimp", client: Any = None) -> None:
        import redis

        self.prefix = prefix
        self.r = client if client is not None else redis.Redis.from_url(url, socket_timeout=5)
        self.names = _Names()

    def _fv(self, feature_set: str, coin: str, venue: str) -> str:
        return f"{self.prefix}:fv:{feature_set}:{coin}:{venue}"

    def put_vector(self, vector: FeatureVector) -> None:
        pipe = self.r.pipeline(transaction=False)
        if vector.feature_set not in self.names.written:
            pipe.set(f"{self.prefix}:fs:{vector.feature_set}", json.dumps(list(vector.names)))
            self.names.written.add(vector.feature_set)
        pipe.hset(
            self._fv(vector.feature_set, vector.coin, vector.kr_venue),
            mapping={
                "ts": _us(vector.ts),
                "known": _us(vector.known_at),
                "written": _us(datetime.now(UTC)),
                "tick": int(vector.tick),
                "values": _pack(vector),
            },
        )
        pipe.execute()

    def _names_of(self, feature_set: str) -> tuple[str, ...] | None:
        names = self.names.cache.get(feature_set)
        if names is None:
            raw = self.r.get(f"{self.prefix}:fs:{feature_set}")
            if raw is None:
                return None
            names = self.names.cache[feature_set] = tuple(json.loads(raw))
        return names

    def get_vector(self, coin: str, kr_venue: str, feature_set: str) -> StoredVector | None:
        raw = self.r.hgetall(self._fv(feature_set, coin, kr_venue))
        if not raw:
            return None
        names = self._names_of(feature_set)
        if names is None:
            return None
        return StoredVector(
            coin=coin,
            kr_venue=kr_venue,
            feature_set=feature_set,
            ts=_dt(raw[b"ts"]),
            known_at=_dt(raw[b"known"]),
            written_at=_dt(raw[b"written"]),
            tick=raw[b"tick"] == b"1",
            names=names,
            values=np.frombuffer(raw[b"values"], dtype=np.float32).astype(np.float64),
        )

    def put_signal(self, signal: Signal) -> None:
        self.r.set(f"{self.prefix}:sig:{signal.coin}:{signal.kr_venue}", signal.to_json())

    def get_signal(self, coin: str, kr_venue: str) -> Signal | None:
        raw = self.r.get(f"{self.prefix}:sig:{coin}:{kr_venue}")
        return None if raw is None else Signal.from_json(raw)

    def clear(self) -> int:
        """Delete every key of this prefix (tests; never the other keys of a shared server)."""
        keys = list(self.r.scan_iter(match=f"{self.prefix}:*", count=1000))
        return int(self.r.delete(*keys)) if keys else 0

    def close(self) -> None:
        self.r.close()


# -------------------------------------------------------------------------------------------- SQLite
class SQLiteStore:
    """One SQLite file (WAL): tables ``feature_sets``, ``vectors`` and ``signals``, one row per key."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.names = _Names()
        with self._conn() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS feature_sets (feature_set TEXT PRIMARY KEY, names TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS vectors (
                    feature_set TEXT, coin TEXT, kr_venue TEXT, ts INTEGER, known INTEGER, written INTEGER,
                    tick INTEGER, vals BLOB, PRIMARY KEY (feature_set, coin, kr_venue));
                CREATE TABLE IF NOT EXISTS signals (coin TEXT, kr_venue TEXT, body TEXT, PRIMARY KEY (coin, kr_venue));
                """
            )

    def _conn(self) -> sqlite3.Connection:
        """One connection per thread (sqlite3 connections are not shared across threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def put_vector(self, vector: FeatureVector) -> None:
        db = self._conn()
        if vector.feature_set not in self.names.written:
            db.execute(
                "INSERT OR REPLACE INTO feature_sets VALUES (?, ?)",
                (vector.feature_set, json.dumps(list(vector.names))),
            )
            self.names.written.add(vector.feature_set)
        db.execute(
            "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                vector.feature_set,
                vector.coin,
                vector.kr_venue,
                _us(vector.ts),
                _us(vector.known_at),
                _us(datetime.now(UTC)),
                int(vector.tick),
                _pack(vector),
            ),
        )

    def get_vector(self, coin: str, kr_venue: str, feature_set: str) -> StoredVector | None:
        db = self._conn()
        row = db.execute(
            "SELECT ts, known, written, tick, vals FROM vectors WHERE feature_set=? AND coin=? AND kr_venue=?",
            (feature_set, coin, kr_venue),
        ).fetchone()
        if row is None:
            return None
        names = self.names.cache.get(feature_set)
        if names is None:
            got = db.execute("SELECT names FROM feature_sets WHERE feature_set=?", (feature_set,)).fetchone()
            if got is None:
                return None
            names = self.names.cache[feature_set] = tuple(json.loads(got[0]))
        ts, known, written, tick, vals = row
        return StoredVector(
            coin=coin,
            kr_venue=kr_venue,
            feature_set=feature_set,
            ts=_dt(ts),
            known_at=_dt(known),
            written_at=_dt(written),
            tick=bool(tick),
            names=names,
            values=np.frombuffer(vals, dtype=np.float32).astype(np.float64),
        )

    def put_signal(self, signal: Signal) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO signals VALUES (?, ?, ?)",
            (signal.coin, signal.kr_venue, signal.to_json()),
        )

    def get_signal(self, coin: str, kr_venue: str) -> Signal | None:
        row = (
            self._conn()
            .execute("SELECT body FROM signals WHERE coin=? AND kr_venue=?", (coin, kr_venue))
            .fetchone()
        )
        return None if row is None else Signal.from_json(row[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_online_store(redis_url: str | None, home: Path, *, prefix: str = "kimp") -> OnlineStore:
    """Redis when a URL is configured (KIMP_REDIS_URL), else the embedded SQLite file under ``home``."""
    if redis_url:
        return RedisStore(redis_url, prefix=prefix)
    return SQLiteStore(Path(home) / "online.db")


def wait_for(predicate: Any, timeout_s: float = 10.0, every_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or the timeout passes (readers waiting for the streamer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return bool(predicate())
