"""The online store, both implementations behind one interface: the embedded SQLite file and a real Redis
server (127.0.0.1:6379, as on every kimp machine and CI; a key prefix of this test run, deleted after)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from kimp.settings import Settings
from kimp.streaming.events import FeatureVector
from kimp.streaming.online import OnlineStore, RedisStore, Signal, SQLiteStore, open_online_store

REDIS_URL = "redis://127.0.0.1:6379/0"
NAMES = ("kr_ret_1m", "prem_fx", "prem_fx_z_1d")


def _vector(
    coin: str = "BTC",
    venue: str = "upbit",
    *,
    ts: datetime,
    values=(0.001, 0.05, None),
    tick=False,
    feature_set: str = "abc123def456",
) -> FeatureVector:
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return FeatureVector(
        ts=ts,
        coin=coin,
        kr_venue=venue,
        names=NAMES,
        values=arr,
        feature_set=feature_set,
        known_at=ts + timedelta(minutes=1),
        computed_at=ts + timedelta(minutes=1, milliseconds=3),
        tick=tick,
    )


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        s: OnlineStore = SQLiteStore(tmp_path / "online.db")
        yield s
        s.close()
        return
    redis_store = RedisStore(REDIS_URL, prefix=f"kimptest_{uuid.uuid4().hex[:12]}")
    try:
        redis_store.r.ping()
    except Exception as e:  # kimp's machines and CI run Redis 7 on 127.0.0.1:6379
        pytest.fail(f"no Redis server at {REDIS_URL} ({e}); the online-store tests need one")
    yield redis_store
    redis_store.clear()
    assert not list(redis_store.r.scan_iter(match=f"{redis_store.prefix}:*"))
    redis_store.close()


def test_latest_vector_per_coin_and_venue_versioned_by_feature_set(store: OnlineStore) -> None:
    t0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert store.get_vector("BTC", "upbit", "abc123def456") is None
    store.put_vector(_vector(ts=t0))
    store.put_vector(_vector(ts=t0 + timedelta(minutes=1), values=(0.002, 0.051, 1.5)))
    store.put_vector(_vector("ETH", ts=t0, values=(-0.01, 0.04, 0.2)))
    store.put_vector(_vector("BTC", "bithumb", ts=t0, values=(0.0, 0.06, None)))
    store.put_vector(
        _vector(ts=t0 + timedelta(minutes=1), feature_set="0123456789ab", values=(9.0, 9.0, 9.0))
    )
    got = store.get_vector("BTC", "upbit", "abc123def456")
    assert got is not None and got.ts == t0 + timedelta(minutes=1) and got.names == NAMES
    assert got.as_dict() == {
        "kr_ret_1m": pytest.approx(0.002),
        "prem_fx": pytest.approx(0.051),
        "prem_fx_z_1d": 1.5,
    }
    assert got.values.dtype == np.float64 and got.known_at == t0 + timedelta(minutes=2)
    assert got.age_ms(t0 + timedelta(minutes=2, seconds=3)) == pytest.approx(3000.0)
    assert store.get_vector("BTC", "bithumb", "abc123def456").as_dict()["prem_fx_z_1d"] is None  # type: ignore[union-attr]
    assert store.get_vector("ETH", "upbit", "abc123def456").as_dict()["kr_ret_1m"] == pytest.approx(-0.01)  # type: ignore[union-attr]
    other = store.get_vector("BTC", "upbit", "0123456789ab")
    assert other is not None and other.values.tolist() == [9.0, 9.0, 9.0]
    assert store.get_vector("BTC", "upbit", "ffffffffffff") is None  # a version nobody wrote


def test_latest_signal_round_trips(store: OnlineStore) -> None:
    t0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert store.get_signal("BTC", "upbit") is None
    for k, p_up in enumerate((0.2, 0.7)):
        store.put_signal(
            Signal(
                ts=t0 + timedelta(minutes=k),
                coin="BTC",
                kr_venue="upbit",
                horizon=60,
                model="lightgbm",
                model_version="3",
                p_down=1 - p_up - 0.1,
                p_flat=0.1,
                p_up=p_up,
                target_position=0.5 * k,
                feature_ts=t0 + timedelta(minutes=k + 1),
                feature_set="abc123def456",
                written_at=t0 + timedelta(minutes=k + 1, milliseconds=5),
            )
        )
    sig = store.get_signal("BTC", "upbit")
    assert (
        sig is not None
        and sig.p_up == 0.7
        and sig.model_version == "3"
        and sig.ts == t0 + timedelta(minutes=1)
    )
    assert store.get_signal("BTC", "bithumb") is None


def test_concurrent_writer_and_readers_see_whole_vectors(store: OnlineStore) -> None:
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    store.put_vector(_vector(ts=t0, values=(0.0, 0.0, 0.0)))
    seen: list[tuple[float, float, float]] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(200):
                v = store.get_vector("BTC", "upbit", "abc123def456")
                assert v is not None
                seen.append(tuple(v.values.tolist()))  # type: ignore[arg-type]
        except BaseException as e:
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for k in range(1, 200):
        store.put_vector(_vector(ts=t0 + timedelta(minutes=k), values=(float(k), float(k), float(k))))
    for t in readers:
        t.join()
    assert not errors
    assert all(a == b == c for a, b, c in seen), "a reader saw a vector mixed from two writes"


def test_settings_choose_redis_or_the_embedded_file(tmp_path: Path) -> None:
    settings = Settings.from_env({"KIMP_HOME": str(tmp_path), "KIMP_REDIS_URL": REDIS_URL})
    s = settings.streaming
    assert isinstance(open_online_store(s.redis_url, settings.home, prefix=s.prefix), RedisStore)
    local = Settings.from_env({"KIMP_HOME": str(tmp_path)})
    store = open_online_store(local.streaming.redis_url, local.home)
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "online.db"
    assert "redis://" not in repr(settings)  # a URL may hold a password: never in logs
    with pytest.raises(ValueError, match="KIMP_REDIS_URL must be a redis://"):
        Settings.from_env({"KIMP_HOME": str(tmp_path), "KIMP_REDIS_URL": "localhost:6379"})
    with pytest.raises(ValueError, match="KIMP_STREAM_KR_VENUE"):
        Settings.from_env({"KIMP_HOME": str(tmp_path), "KIMP_STREAM_KR_VENUE": "coinone"})
