"""The live side's settings (part of kimp.settings.Settings as ``Settings.streaming``).

KIMP_REDIS_URL      online store in Redis (e.g. redis://127.0.0.1:6379/0); unset: SQLite at $KIMP_HOME/online.db
KIMP_PG_URL         offline time-series store in PostgreSQL (served vectors, predictions, signals); unset: none
KIMP_STREAM_KR_VENUE  the Korean venue whose premium is streamed and signalled (upbit | bithumb; default upbit)
KIMP_STREAM_PREFIX  key prefix in Redis / table prefix in PostgreSQL (default kimp), so deployments can share
KIMP_STALE_AFTER_S  a stored feature vector older than this is stale (default: two bars plus 30 s)
KIMP_SERVE_MODEL    the model whose champion is served (registered as kimp-<model>; default ensemble)
KIMP_MODEL_POLL_S   how often the registry is asked whether the champion moved (default 10 s)
KIMP_SIGNAL_CACHE_MS  the API serves a signal it read from the online store for at most this long before
                    reading again (default 50 ms; 0: every request reads the store)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KR_VENUES = ("upbit", "bithumb")


@dataclass(frozen=True)
class StreamSettings:
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    pg_url: str | None = field(default=None, repr=False)
    kr_venue: str = "upbit"
    prefix: str = "kimp"
    stale_after_s: float | None = None  # None: 2 bars + 30 s
    model: str = "ensemble"  # served: kimp-<model>@champion, else its newest version
    model_poll_s: float = 10.0
    signal_cache_ms: float = 50.0

    def __post_init__(self) -> None:
        if self.kr_venue not in KR_VENUES:
            raise ValueError(
                f"kr_venue (KIMP_STREAM_KR_VENUE) is {self.kr_venue!r}: expected upbit or bithumb"
            )
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", self.prefix):
            raise ValueError(
                f"prefix (KIMP_STREAM_PREFIX) is {self.prefix!r}: expected lower-case letters, digits and _ "
                "(it names Redis keys and PostgreSQL tables)"
            )
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("KIMP_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if self.pg_url is not None and not self.pg_url.startswith(("postgresql://", "postgres://")):
            raise ValueError("KIMP_PG_URL must be a postgresql:// URL")
        if self.stale_after_s is not None and not self.stale_after_s > 0:
            raise ValueError(f"stale_after_s (KIMP_STALE_AFTER_S) must be > 0, got {self.stale_after_s}")

        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,60}", self.model):
            raise ValueError(
                f"model (KIMP_SERVE_MODEL) is {self.model!r}: expected a model name, e.g. ensemble"
            )
        if not 0 <= self.signal_cache_ms <= 60_000:
            raise ValueError(
                f"signal_cache_ms (KIMP_SIGNAL_CACHE_MS) must be 0..60000 milliseconds, got {self.signal_cache_ms}"
            )
        if not self.model_poll_s > 0:
            raise ValueError(f"model_poll_s (KIMP_MODEL_POLL_S) must be > 0 seconds, got {self.model_poll_s}")

    def stale_after(self, interval_s: int) -> float:
        """Seconds after which a stored vector is stale: the setting, or two bars plus 30 s."""
        return self.stale_after_s if self.stale_after_s is not None else 2 * interval_s + 30.0

    @classmethod
    def from_env(cls, read: dict[str, str]) -> StreamSettings:
        values: dict[str, object] = {}
        for var, name in (
            ("KIMP_REDIS_URL", "redis_url"),
            ("KIMP_PG_URL", "pg_url"),
            ("KIMP_STREAM_PREFIX", "prefix"),
            ("KIMP_SERVE_MODEL", "model"),
        ):
            if var in read:
                values[name] = read[var].strip()
        if "KIMP_STREAM_KR_VENUE" in read:
            values["kr_venue"] = read["KIMP_STREAM_KR_VENUE"].strip().lower()
        for var, name in (
            ("KIMP_STALE_AFTER_S", "stale_after_s"),
            ("KIMP_MODEL_POLL_S", "model_poll_s"),
            ("KIMP_SIGNAL_CACHE_MS", "signal_cache_ms"),
        ):
            if var in read:
                try:
                    values[name] = float(read[var])
                except ValueError:
                    unit = "milliseconds" if var.endswith("_MS") else "seconds"
                    raise ValueError(f"{var}={read[var]!r}: expected {unit}") from None
        return cls(**values)  # type: ignore[arg-type]
