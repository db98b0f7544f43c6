"""The signal service's domain: what ``GET /v1/signal``, ``POST /v1/predict`` and ``GET /healthz`` answer,
independent of the web framework (kimp.serving.api is the thin ASGI layer over it).

Bad input raises ``RequestError`` naming the field and what was expected (the API answers 4xx with it);
nothing a client sends can cause a 5xx. A missing model or online store is ``Unavailable`` (503).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import orjson
import polars as pl

from kimp.features.types import FeatureConfig
from kimp.models.labels import LAST_MOVE
from kimp.serving.champion import ChampionHolder, LoadedModel, NoModelError
from kimp.serving.metrics import Metrics
from kimp.streaming.config import KR_VENUES, StreamSettings
from kimp.streaming.online import OnlineStore, Signal


class RequestError(ValueError):
    """A bad request: ``field`` names what is wrong (``coin``, ``features.prem_fx``, ...)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status

    def payload(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


class Unavailable(RuntimeError):
    """The service cannot answer yet (no model, no store): 503, not the client's fault."""


@cache
def feature_names(config: FeatureConfig, kr_venue: str) -> tuple[str, tuple[str, ...]]:
    """(feature-set hash, catalog names) of the streamed feature set for ``kr_venue``."""
    from kimp.features.build import catalog, feature_set_version
    from kimp.streaming.engine import config_for_venue

    venue_config = config_for_venue(config, kr_venue)
    return feature_set_version(venue_config), tuple(s.name for s in catalog(venue_config))


def model_frame(loaded: LoadedModel, rows: list[tuple[str, list[datetime], np.ndarray]]) -> pl.DataFrame:
    """The frame a kimp model scores: per coin its bars (ts ascending) and the model's features as Float32
    (as in the ``features`` table), coins in sorted order. Unknown values stay NaN: every model reads its
    features through a matrix where null is NaN (kimp.models.dataset.feature_matrix), so no per-column
    conversion is spent here."""
    parts = []
    for coin, ts, matrix in sorted(rows, key=lambda r: r[0]):
        values = pl.from_numpy(
            np.asarray(matrix, dtype=np.float32), schema=list(loaded.features), orient="row"
        )
        keys = pl.DataFrame(
            {"ts": ts, "coin": [coin] * len(ts)}, schema={"ts": pl.Datetime("us", "UTC"), "coin": pl.String}
        )
        parts.append(pl.concat([keys, values], how="horizontal"))
    return pl.concat(parts) if len(parts) > 1 else parts[0]


def _number(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def signal_payload(signal: Signal, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {**_signal_fields(signal), "age_ms": round((now - signal.feature_ts).total_seconds() * 1000, 1)}


def _signal_fields(signal: Signal) -> dict[str, Any]:
    return {
        "ts": signal.ts.isoformat(),
        "coin": signal.coin,
        "kr_venue": signal.kr_venue,
        "horizon": signal.horizon,
        "model": signal.model,
        "model_version": signal.model_version,
        "p_down": _number(signal.p_down),
        "p_flat": _number(signal.p_flat),
        "p_up": _number(signal.p_up),
        "target_position": signal.target_position,
        "feature_ts": signal.feature_ts.isoformat(),
    }


@dataclass(frozen=True)
class _CachedSignal:
    """A signal serialized once: ``head`` is its JSON up to ``"age_ms":``; a request appends the age."""

    expires: float  # time.monotonic() after which the store is read again
    head: bytes
    feature_ts: float  # epoch seconds

    @classmethod
    def of(cls, signal: Signal, expires: float) -> _CachedSignal:
        head = orjson.dumps(_signal_fields(signal))[:-1] + b',"age_ms":'
        return cls(expires, head, signal.feature_ts.timestamp())

    def body(self) -> bytes:
        return self.head + repr(round((time.time() - self.feature_ts) * 1000, 1)).encode() + b"}"


_NUMBER_TYPES = frozenset({float, int, type(None)})


class SignalService:
    def __init__(
        self,
        store: OnlineStore,
        holder: ChampionHolder | None,
        *,
        stream: StreamSettings,
        features: FeatureConfig,
        horizon: int,
        metrics: Metrics | None = None,
        coins: Iterable[str] | None = None,
    ) -> None:
        self.store, self.holder, self.stream = store, holder, stream
        self.features, self.horizon = features, horizon
        self.coins = tuple(sorted(coins or features.coins))
        self.metrics = metrics or Metrics()
        self.metrics.feature_ages(self._ages)
        self.started = datetime.now(UTC)
        self.loop_status: dict[str, Any] | None = None  # set by an in-process live loop (kimp serve --stream)
        # the newest signal per (coin, venue), serialized, read from the store again after this long
        self.cache_s = stream.signal_cache_ms / 1000
        self._signals: dict[tuple[str, str], _CachedSignal] = {}

    # ------------------------------------------------------------------ validation
    def _coin(self, coin: Any, field: str = "coin") -> str:
        if not isinstance(coin, str) or coin.upper() not in self.coins:
            raise RequestError(field, f"expected one of {', '.join(self.coins)}, got {coin!r}")
        return coin.upper()

    def _venue(self, venue: Any, field: str = "kr_venue") -> str:
        if venue is None:
            return self.stream.kr_venue
        if not isinstance(venue, str) or venue.lower() not in KR_VENUES:
            raise RequestError(field, f"expected one of {', '.join(KR_VENUES)}, got {venue!r}")
        return venue.lower()

    def model(self) -> LoadedModel:
        if self.holder is None:
            raise Unavailable("no model registry configured")
        try:
            return self.holder.get()
        except NoModelError as exc:
            raise Unavailable(str(exc)) from None

    # ------------------------------------------------------------------ routes
    def signal_json(self, coin: Any, kr_venue: Any = None) -> bytes:
        """The newest signal of ``coin`` on ``kr_venue`` as the route's JSON body. The serialized signal is
        kept ``cache_s`` (KIMP_SIGNAL_CACHE_MS) before the store is read again, so a new signal is served
        at most that late; ``age_ms`` is computed per request."""
        coin, venue = self._coin(coin), self._venue(kr_venue)
        now = time.monotonic()
        cached = self._signals.get((coin, venue))
        if cached is None or now >= cached.expires:
            try:
                signal = self.store.get_signal(coin, venue)
            except Exception as exc:
                raise Unavailable(f"online store unreachable: {type(exc).__name__}: {exc}") from None
            if signal is None:
                raise RequestError(
                    "coin",
                    f"no signal yet for {coin} on {venue} (is `kimp stream` running for it?)",
                    status=404,
                )
            cached = self._signals[(coin, venue)] = _CachedSignal.of(signal, now + self.cache_s)
        return cached.body()

    def predict_json(self, raw: bytes) -> bytes:
        """``POST /v1/predict``: the request body (bytes) to the response body."""
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise RequestError("body", f"not valid JSON: {exc}") from None
        return orjson.dumps(self.predict(body))

    def predict(self, body: Any) -> dict[str, Any]:
        if type(body) is not dict and not isinstance(body, Mapping):  # the exact type first: ABC checks cost
            raise RequestError(
                "body", 'expected a JSON object {"coin": ..., "kr_venue": ..., "features": {...}}'
            )
        unknown_keys = set(body) - {"coin", "kr_venue", "features", "ts"}
        if unknown_keys:
            raise RequestError(sorted(unknown_keys)[0], "unknown field; expected coin, kr_venue, features")
        if "coin" not in body:
            raise RequestError("coin", "required")
        coin, venue = self._coin(body["coin"]), self._venue(body.get("kr_venue"))
        features = body.get("features")
        if type(features) is not dict and not isinstance(features, Mapping):
            raise RequestError("features", "required: an object of feature name -> number or null")
        ts = self._ts(body.get("ts"))
        loaded = self.model()
        row = feature_row(columns(loaded, self.features, venue), features)
        proba = loaded.predict_rows(row[None, :])[0]
        return {
            "coin": coin,
            "kr_venue": venue,
            "ts": ts.isoformat(),
            "horizon": self.horizon,
            "model": loaded.name,
            "model_version": loaded.version,
            "p_down": _number(proba[0]),
            "p_flat": _number(proba[1]),
            "p_up": _number(proba[2]),
            "missing": int(np.isnan(row).sum()),
        }

    def _ts(self, raw: Any) -> datetime:
        if raw is None:
            now = datetime.now(UTC)
            return now.replace(second=0, microsecond=0)
        try:
            ts = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            ts = None
        if ts is None or ts.tzinfo is None:
            raise RequestError(
                "ts", f"expected an ISO time with a zone (e.g. 2024-03-01T10:00:00Z), got {raw!r}"
            )
        return ts.astimezone(UTC)

    # ------------------------------------------------------------------ health
    def _vectors(self) -> list[tuple[str, str, Any]]:
        out = []
        for venue in KR_VENUES:
            feature_set, _ = feature_names(self.features, venue)
            for coin in self.coins:
                out.append((coin, venue, self.store.get_vector(coin, venue, feature_set)))
        return out

    def _ages(self) -> Iterable[tuple[str, str, float]]:
        now = datetime.now(UTC)
        for coin, venue, vec in self._vectors():
            if vec is not None:
                yield coin, venue, vec.age_ms(now) / 1000

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details): a model loaded, the store reachable, and the streamed venue's vectors fresh
        (younger than KIMP_STALE_AFTER_S, default two bars plus 30 s)."""
        problems: list[str] = []
        details: dict[str, Any] = {"kr_venue": self.stream.kr_venue, "signal_cache_ms": self.cache_s * 1000}
        try:
            loaded = self.model()
            details["model"] = {"name": loaded.registered, "version": loaded.version, "via": loaded.via}
        except Unavailable as exc:
            problems.append(f"model: {exc}")
        now = datetime.now(UTC)
        features: dict[str, Any] = {}
        try:
            vectors = [v for v in self._vectors() if v[1] == self.stream.kr_venue]
        except Exception as exc:
            problems.append(f"online store unreachable: {type(exc).__name__}: {exc}")
            vectors = []
        for coin, venue, vec in vectors:
            if vec is None:
                problems.append(f"features: none stored yet for {coin} on {venue}")
                continue
            interval = max((vec.known_at - vec.ts).total_seconds(), 1.0) if not vec.tick else 60.0
            limit = self.stream.stale_after(int(interval))
            age = vec.age_ms(now)
            features[coin] = {"ts": vec.ts.isoformat(), "age_ms": round(age, 1), "stale_after_s": limit}
            if age > limit * 1000:
                problems.append(
                    f"features: {coin} on {venue} is stale ({age / 1000:.0f} s old, limit {limit:.0f} s)"
                )
        details["features"] = features
        if self.loop_status is not None:
            details["stream"] = dict(self.loop_status)
        details["problems"] = problems
        details["status"] = "ok" if not problems else "failing"
        return not problems, details


class Columns:
    """Where a request's feature names go in the model's row, for one model and venue: every name a
    request may send (the catalog's and the model's) -> its column, -1 for a catalog feature the model
    does not read. Remembers the positions of the last name order seen: clients send the same vector
    shape request after request, and orjson hands back the same (cached) key strings, so comparing the
    names is cheaper than looking each one up again."""

    def __init__(self, index: dict[str, int], width: int) -> None:
        self.index, self.width = index, width
        self.last: tuple[tuple[str, ...], np.ndarray, np.ndarray] | None = None

    def positions(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(which of the request's values the model reads, where they go in its row)."""
        last = self.last
        if last is not None and last[0] == names:
            return last[1], last[2]
        try:
            idx = np.fromiter(map(self.index.__getitem__, names), np.int64, len(names))
        except KeyError:
            unknown = [k for k in names if k not in self.index]
            shown = ", ".join(map(repr, unknown[:5])) + (
                f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            )
            raise RequestError(f"features.{unknown[0]}", f"unknown feature name(s) {shown}") from None
        take = np.flatnonzero(idx >= 0)
        self.last = (names, take, idx[take])
        return take, idx[take]


def columns(loaded: LoadedModel, config: FeatureConfig, venue: str) -> Columns:
    """The model's ``Columns`` for ``venue``, built once per model and venue (kept with the model)."""
    cache = loaded.__dict__.get("_columns_cache")
    if cache is None:
        cache = {}
        object.__setattr__(loaded, "_columns_cache", cache)  # frozen dataclass: kept with the model
    found = cache.get(venue)
    if found is None:
        _, catalog_names = feature_names(config, venue)
        index = dict.fromkeys(catalog_names, -1)
        # last_move (the label rule's input, not a catalog feature) is accepted like a catalog feature the
        # model does not read, so the same request body serves a champion with or without persistence
        index[LAST_MOVE] = -1
        index.update((n, i) for i, n in enumerate(loaded.features))
        found = cache[venue] = Columns(index, len(loaded.features))
    return found  # type: ignore[no-any-return]


def feature_row(cols: Columns, features: Mapping[str, Any]) -> np.ndarray:
    """The request's ``features`` as one float32 row in the model's order (NaN where missing or null).

    The common case (known names, numbers or nulls) runs in C (the names' positions, one numpy conversion
    of the values); anything else takes the per-field path that names the bad field."""
    take, dest = cols.positions(tuple(features))
    values = list(features.values())
    try:
        if not _NUMBER_TYPES.issuperset(map(type, values)):
            raise TypeError
        vals = np.array(values, dtype=np.float64)  # None -> NaN
    except (TypeError, ValueError, OverflowError):
        for name, value in features.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise RequestError(f"features.{name}", f"expected a number or null, got {value!r}") from None
            try:
                float(value) if value is not None else None
            except OverflowError:
                raise RequestError(
                    f"features.{name}", f"expected a number in float range, got {value}"
                ) from None
        raise
    row = np.full(cols.width, np.nan, dtype=np.float32)
    row[dest] = vals[take]
    return row


def floor_to(ts: datetime, seconds: int) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC) + timedelta(0)
