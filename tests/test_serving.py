"""The signal service: every route and bad-input case (TestClient over the real app), the champion reloaded
when its alias moves (a tiny model registered in a temporary MLflow sqlite store), the live loop's signals
by the backtest's prediction rule into the online store (SQLite and the real Redis) and PostgreSQL, and a
``kimp serve --stream`` smoke test on the simulated feed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from kimp.features.types import FeatureConfig
from kimp.models.base import WalkForwardConfig
from kimp.models.baselines import MajorityModel, fit_logistic
from kimp.models.registry import save_model
from kimp.serving.api import create_app
from kimp.serving.champion import ChampionHolder
from kimp.serving.service import SignalService, feature_names
from kimp.settings import PROJECT_ROOT, Settings
from kimp.streaming.config import StreamSettings
from kimp.streaming.events import FeatureVector
from kimp.streaming.online import RedisStore, Signal, SQLiteStore, wait_for
from tests.test_streaming_online import REDIS_URL
from tests.test_streaming_timeseries import pg_url  # noqa: F401 (fixture)

FEATURES = ["prem_fx", "kr_ret_1m", "prem_fx_z_1d"]
MODEL = "logistic"  # served as kimp-logistic (KIMP_SERVE_MODEL)
CONFIG = FeatureConfig()


def _train_frame(seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = 300
    x = rng.normal(size=(n, 3))
    label = np.digitize(x[:, 0] + 0.3 * rng.normal(size=n), [-0.5, 0.5])
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [t0 + timedelta(minutes=i) for i in range(n)],
            "coin": ["BTC"] * n,
            **{f: x[:, i] for i, f in enumerate(FEATURES)},
            "label": label,
            "split": ["train"] * n,
        }
    )


def _register(mlflow_uri: str, root: Path, model, spec: str) -> str:  # type: ignore[no-untyped-def]
    import mlflow

    from kimp.models.tracking import ensure_experiment, log_trained_model

    ensure_experiment(mlflow_uri, "serving-test", f"file://{root / 'artifacts'}")
    mlflow.set_experiment("serving-test")
    path = save_model(spec, model, root / f"model-{uuid.uuid4().hex[:6]}")
    _, version = log_trained_model(mlflow, name=MODEL, day=date(2024, 3, 2), model_dir=path)
    assert version is not None
    return version


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """kimp-logistic v1 (logistic on 3 catalog features) in a temporary MLflow sqlite store."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    logistic = fit_logistic(_train_frame(), WalkForwardConfig(), features=FEATURES)
    v1 = _register(uri, root, logistic, "logistic")
    yield {"uri": uri, "root": root, "v1": v1, "model": logistic}


def _holder(registry: dict) -> ChampionHolder:
    holder = ChampionHolder(registry["uri"], MODEL, poll_s=0.2)
    holder.poll()
    return holder


def _vector(coin: str, ts: datetime, venue: str = "upbit", known_at: datetime | None = None) -> FeatureVector:
    feature_set, names = feature_names(CONFIG, venue)
    values = np.full(len(names), np.nan)
    values[names.index("prem_fx")] = 0.05
    return FeatureVector(
        ts=ts,
        coin=coin,
        kr_venue=venue,
        names=names,
        values=values,
        feature_set=feature_set,
        known_at=known_at or ts + timedelta(minutes=1),
        computed_at=datetime.now(UTC),
    )


def _signal(coin: str = "BTC", venue: str = "upbit") -> Signal:
    ts = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    return Signal(
        ts=ts,
        coin=coin,
        kr_venue=venue,
        horizon=60,
        model=MODEL,
        model_version="1",
        p_down=0.5,
        p_flat=0.3,
        p_up=0.2,
        target_position=-0.25,
        feature_ts=ts + timedelta(minutes=1),
        feature_set=feature_names(CONFIG, venue)[0],
        written_at=datetime.now(UTC),
    )


@pytest.fixture(params=["sqlite", "redis"])
def client(request: pytest.FixtureRequest, registry: dict, tmp_path: Path) -> Iterator[TestClient]:
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "online.db")
    else:
        store = RedisStore(REDIS_URL, prefix=f"kimptest_{uuid.uuid4().hex[:12]}")
        try:
            store.r.ping()
        except Exception as e:
            pytest.fail(f"no Redis server at {REDIS_URL} ({e}); the serving tests need one")
    service = SignalService(
        store, _holder(registry), stream=StreamSettings(model=MODEL), features=CONFIG, horizon=60
    )
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        c.service = service  # type: ignore[attr-defined]
        yield c
    if isinstance(store, RedisStore):
        store.clear()
    store.close()


def _error(response, status: int, field: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field, body
    return body["error"]


def test_signal_route_returns_the_stored_signal_with_its_age(client: TestClient) -> None:
    client.service.store.put_signal(_signal("BTC"))  # type: ignore[attr-defined]
    r = client.get("/v1/signal/BTC", params={"kr_venue": "upbit"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "ts", "coin", "kr_venue", "horizon", "model", "model_version", "p_down", "p_flat", "p_up",
        "target_position", "feature_ts", "age_ms",
    }  # fmt: skip
    assert body["coin"] == "BTC" and body["kr_venue"] == "upbit" and body["target_position"] == -0.25
    assert datetime.fromisoformat(body["ts"]).tzinfo is not None
    assert 0 <= body["age_ms"] < 120_000
    assert client.get("/v1/signal/btc").json()["coin"] == "BTC"  # default venue, case-insensitive coin


def test_signal_route_bad_input_is_a_4xx_naming_the_field(client: TestClient) -> None:
    assert "BTC, ETH" in _error(client.get("/v1/signal/DOGE"), 422, "coin")
    assert "upbit, bithumb" in _error(client.get("/v1/signal/BTC?kr_venue=coinone"), 422, "kr_venue")
    assert "no signal yet" in _error(client.get("/v1/signal/ETH?kr_venue=bithumb"), 404, "coin")
    _error(client.get("/v1/nothing"), 404, "path")
    _error(client.post("/v1/signal/BTC"), 405, "method")


def test_predict_scores_a_partial_vector_missing_features_null(client: TestClient, registry: dict) -> None:
    r = client.post("/v1/predict", json={"coin": "BTC", "kr_venue": "upbit", "features": {"prem_fx": 1.5}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == MODEL and body["model_version"] == registry["v1"] and body["missing"] == 2
    p = np.array([body["p_down"], body["p_flat"], body["p_up"]])
    assert p.sum() == pytest.approx(1.0)
    frame = pl.DataFrame(
        {"ts": [datetime.fromisoformat(body["ts"])], "coin": ["BTC"], "prem_fx": [1.5],
         "kr_ret_1m": [None], "prem_fx_z_1d": [None]},
        schema_overrides={f: pl.Float32 for f in FEATURES},
    )  # fmt: skip
    np.testing.assert_allclose(p, registry["model"].predict_proba(frame)[0], rtol=1e-9)
    # a catalog feature the model does not read is accepted and ignored; nulls are accepted
    r = client.post("/v1/predict", json={"coin": "ETH", "features": {"prem_usdt": 0.1, "prem_fx": None}})
    assert r.status_code == 200 and r.json()["missing"] == 3
    # last_move (the persistence input, not a catalog feature) too, by a champion that does not read it
    r = client.post("/v1/predict", json={"coin": "BTC", "features": {"prem_fx": 1.5, "last_move": 2}})
    assert r.status_code == 200 and r.json()["p_up"] == body["p_up"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b"", "body"),
        (json.dumps({"kr_venue": "upbit", "features": {}}).encode(), "coin"),
        (json.dumps({"coin": "XRP", "features": {}}).encode(), "coin"),
        (json.dumps({"coin": 5, "features": {}}).encode(), "coin"),
        (json.dumps({"coin": "BTC", "kr_venue": "korbit", "features": {}}).encode(), "kr_venue"),
        (json.dumps({"coin": "BTC"}).encode(), "features"),
        (json.dumps({"coin": "BTC", "features": [1.0]}).encode(), "features"),
        (
            json.dumps({"coin": "BTC", "features": {"no_such_feature": 1.0}}).encode(),
            "features.no_such_feature",
        ),
        (json.dumps({"coin": "BTC", "features": {"prem_fx": "high"}}).encode(), "features.prem_fx"),
        (json.dumps({"coin": "BTC", "features": {"prem_fx": True}}).encode(), "features.prem_fx"),
        (
            b'{"coin": "BTC", "features": {"kr_ret_1m": 1.0, "prem_fx": 1' + b"0" * 400 + b"}}",
            "body",  # a number beyond float range: orjson refuses it
        ),
        (json.dumps({"coin": "BTC", "features": {}, "extra": 1}).encode(), "extra"),
        (json.dumps({"coin": "BTC", "features": {}, "ts": "yesterday"}).encode(), "ts"),
        (json.dumps({"coin": "BTC", "features": {}, "ts": "2024-03-01T10:00:00"}).encode(), "ts"),
    ],
)
def test_predict_bad_input_is_a_422_naming_the_field(client: TestClient, body: bytes, field: str) -> None:
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    _error(r, 422, field)


def test_predict_body_over_the_limit_is_a_413(client: TestClient) -> None:
    body = b'{"coin": "BTC", "features": {"prem_fx": ' + b" " * 1_100_000 + b"1.0}}"
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert "MB" in _error(r, 413, "body")


def test_healthz_fails_when_features_are_stale_or_missing(client: TestClient) -> None:
    store = client.service.store  # type: ignore[attr-defined]
    r = client.get("/healthz")
    assert r.status_code == 503 and any("none stored yet" in p for p in r.json()["problems"])
    bar = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    for coin in ("BTC", "ETH"):
        store.put_vector(_vector(coin, bar))
    r = client.get("/healthz")
    assert r.status_code == 200, r.text
    assert r.json()["model"]["name"] == f"kimp-{MODEL}" and r.json()["features"]["BTC"]["age_ms"] < 120_000
    old = bar - timedelta(minutes=10)
    store.put_vector(_vector("ETH", old))
    r = client.get("/healthz")
    assert r.status_code == 503 and any("ETH on upbit is stale" in p for p in r.json()["problems"])


def test_metrics_expose_latency_feature_age_and_errors(client: TestClient) -> None:
    store = client.service.store  # type: ignore[attr-defined]
    store.put_vector(
        _vector("BTC", datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1))
    )
    client.get("/v1/signal/DOGE")
    text = client.get("/metrics").text
    assert (
        'kimp_request_seconds_bucket{le="0.005",method="GET",route="/v1/signal/{coin}",status="422"}' in text
    )
    assert 'kimp_errors_total{where="request_4xx"} 1.0' in text
    assert 'kimp_feature_age_seconds{coin="BTC",kr_venue="upbit"}' in text
    assert "kimp_bar_to_signal_seconds_bucket" in text
    assert f'kimp_model_info{{model="kimp-{MODEL}"' not in text or "version" in text


def test_no_model_is_a_503_not_a_crash(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'none.db'}"
    holder = ChampionHolder(empty, "nothing_registered")
    holder.poll()
    assert holder.current is None and "no version" in (holder.error or "")
    service = SignalService(
        SQLiteStore(tmp_path / "o.db"), holder, stream=StreamSettings(), features=CONFIG, horizon=60
    )
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        r = c.post("/v1/predict", json={"coin": "BTC", "features": {}})
        assert r.status_code == 503 and "kimp-nothing_registered" in r.json()["error"]
        assert c.get("/healthz").status_code == 503


def test_champion_reloads_when_the_alias_moves(registry: dict) -> None:
    from mlflow import MlflowClient

    holder = ChampionHolder(registry["uri"], MODEL, poll_s=0.2)
    holder.poll()
    assert holder.get().version == registry["v1"] and holder.get().via == "newest version"
    assert holder.get().load_s < 30
    majority = MajorityModel(priors=np.array([0.7, 0.2, 0.1]))
    v2 = _register(registry["uri"], registry["root"], majority, "majority")
    client = MlflowClient(tracking_uri=registry["uri"])
    client.set_registered_model_alias(f"kimp-{MODEL}", "champion", registry["v1"])
    holder.start()  # background polling, as in the service
    try:
        assert wait_for(lambda: holder.get().via == "alias champion", 20)
        assert holder.get().version == registry["v1"]
        service = SignalService(SQLiteStore(registry["root"] / "o.db"), holder, stream=StreamSettings(model=MODEL),
                                features=CONFIG, horizon=60)  # fmt: skip
        body = {"coin": "BTC", "features": {"prem_fx": 0.2}}
        before = service.predict(body)
        client.set_registered_model_alias(f"kimp-{MODEL}", "champion", v2)  # promote: no restart
        assert wait_for(lambda: holder.get().version == v2, 20), holder.error
        after = service.predict(body)
        assert before["model_version"] == registry["v1"] and after["model_version"] == v2
        assert [after["p_down"], after["p_flat"], after["p_up"]] == pytest.approx([0.7, 0.2, 0.1])
    finally:
        holder.stop()
        client.set_registered_model_alias(f"kimp-{MODEL}", "champion", registry["v1"])


def test_live_loop_signals_follow_the_backtest_rule_into_the_stores(
    registry: dict,
    tmp_path: Path,
    pg_url: str,  # noqa: F811 (the fixture of test_streaming_timeseries)
) -> None:
    """A replay of the simulated market through the loop: every bar's signal is in the online store and in
    PostgreSQL with the bar's premium rows, and the targets are what prediction_signals gives for the same
    probabilities."""
    from kimp.backtest.signals import prediction_targets
    from kimp.market_data.source import build_source
    from kimp.premium import compute_premium
    from kimp.serving.live import StreamOptions
    from kimp.serving.run import run_stream
    from kimp.streaming.timeseries import TimeSeriesStore

    settings = Settings(home=tmp_path, mlflow_uri=registry["uri"],
                        streaming=StreamSettings(model=MODEL, pg_url=pg_url))  # fmt: skip
    seen: list[Signal] = []
    options = StreamOptions(source="simulated", start=date(2024, 3, 4), end=date(2024, 3, 4), warmup_days=0,
                            max_bars=6, record=True)  # fmt: skip
    loop = run_stream(settings, options, on_signal=lambda s, ms: seen.append(s))
    assert loop.stats.bars == 6 and loop.stats.errors == 0 and len(seen) == 12
    assert len(loop.stats.latencies_ms) == 6 and all(ms > 0 for ms in loop.stats.latencies_ms)
    store = SQLiteStore(tmp_path / "online.db")
    for coin in ("BTC", "ETH"):
        got = store.get_signal(coin, "upbit")
        mine = [s for s in seen if s.coin == coin]
        assert got == mine[-1]
        edge = np.array([s.p_down - s.p_up for s in mine])
        hold = -(-60 * 60 // loop.engine.interval_s)
        np.testing.assert_array_equal(
            [s.target_position for s in mine], prediction_targets(edge, 0.1, 0.05, hold, 0.25)
        )
    ts = TimeSeriesStore(pg_url, loop.engine.names)
    assert ts.read("signals").height == 12 and ts.read("predictions").height == 12
    # every closed bar's premium rows, equal to what the kimchi_premium asset computes from the same candles
    bars = (
        ts.read("bars")
        .filter(pl.col("kr_venue") == "upbit")
        .with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    )
    assert bars.height == 12 and bars["ts"].n_unique() == 6
    assert sorted(bars["ts"].unique().to_list()) == sorted({s.ts for s in seen})
    source, day = build_source("simulated", seed=settings.seed), date(2024, 3, 4)
    kr = {v: source.candles(v, day) for v in ("upbit", "bithumb")}
    batch = compute_premium(kr, source.candles("binance", day), pl.DataFrame(), day=day)
    joined = bars.join(batch, on=["ts", "coin", "kr_venue"], suffix="_batch")
    assert joined.height == 12
    for column in ("kr_close", "binance_close", "usdt_krw_close", "premium_usdt"):  # FX: none in a cold start
        np.testing.assert_allclose(joined[column].to_numpy(), joined[f"{column}_batch"].to_numpy(), rtol=1e-9)
    served = ts.read("served_features")  # bar closes and the tick refreshes between them
    assert served.filter(~pl.col("tick")).height == 12 and served.filter(pl.col("tick")).height > 0
    ts.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kimp_serve_stream_smoke_on_the_simulated_feed(registry: dict, tmp_path: Path) -> None:
    """`kimp serve --stream` as a process: the simulated market at 120x, a signal readable within seconds."""
    import httpx

    port = _free_port()
    env = {
        **os.environ,
        "KIMP_HOME": str(tmp_path),
        "KIMP_MLFLOW_URI": registry["uri"],
        "KIMP_SERVE_MODEL": MODEL,
        "KIMP_ORDERBOOK_MS": "60000",
    }
    kimp = Path(sys.executable).parent / "kimp"
    proc = subprocess.Popen(
        [str(kimp), "serve", "--port", str(port), "--stream", "--source", "simulated", "--speed", "120",
         "--warmup-days", "0"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240  # seconds on an idle machine; minutes at a load of 25 on 2 cores
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/signal/BTC", timeout=2)
                if r.status_code == 200:
                    body = r.json()
                    break
                assert r.status_code in (404, 503), r.text
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        if body is None:
            proc.terminate()
            pytest.fail(
                "no signal within 240 s; the service said:\n" + proc.communicate(timeout=15)[0][-4000:]
            )
        assert body["model"] == MODEL and body["coin"] == "BTC" and -1 <= body["target_position"] <= 1
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert "kimp_bar_to_signal_seconds_count" in metrics
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert '"message": "champion loaded"' in out, out[-3000:]  # structured logs


class _Holder:
    """ChampionHolder's get() for a model loaded from its saved folder (the registry is tested above)."""

    def __init__(self, loaded) -> None:  # type: ignore[no-untyped-def]
        self.loaded = loaded

    def get(self):  # type: ignore[no-untyped-def]
        return self.loaded


def test_live_last_move_equals_batch_and_a_persistence_champion_scores_as_in_batch(tmp_path: Path) -> None:
    """An ensemble that chose the persistence baseline, saved and loaded, served by the live loop on a short
    replay of the simulated market: the loop's last_move (the saved label rule on the engine's premium rows)
    equals walk_forward's batch last_move bar for bar, and every signal's probabilities are the model's
    batch predict_proba on the batch rows."""
    from kimp.market_data.source import build_source
    from kimp.models.baselines import PersistenceModel
    from kimp.models.ensemble import EnsembleModel
    from kimp.models.labels import LAST_MOVE, label_rule
    from kimp.models.registry import load_model
    from kimp.models.walk_forward import labels_with_last_move
    from kimp.premium import compute_premium
    from kimp.serving.champion import LoadedModel
    from kimp.serving.live import LiveLoop, StreamOptions, open_stream

    # premium_usdt: a cold start has no FX rows; a band small enough for all three classes in an hour
    config = WalkForwardConfig(horizon_minutes=60, premium_column="premium_usdt", round_trip_cost=0.0002)
    persistence = PersistenceModel(
        hit_rate=0.6, priors=np.array([0.3, 0.5, 0.2]), label_rule=label_rule(config)
    )
    model = load_model(
        save_model(
            "ensemble",
            EnsembleModel(
                members={"persistence": persistence}, weights={"persistence": 1.0}, chosen="persistence"
            ),
            tmp_path / "ensemble",
        )
    )
    loaded = LoadedModel(name="ensemble", registered="kimp-ensemble", version="1", via="test", model=model,
                         features=tuple(model.features), history=1, load_s=0.0, loaded_at=datetime.now(UTC),
                         feature_set=None)  # fmt: skip
    settings = Settings(home=tmp_path)
    day, bars = date(2024, 3, 4), 64  # the horizon (60 bars) and a few with a last move
    options = StreamOptions(source="simulated", start=day, end=day, warmup_days=0, max_bars=bars)
    engine, _feed, warm_up = open_stream(settings, options)
    engine.tick = False  # signals are per bar; the tick refreshes between closes would only cost time
    store = SQLiteStore(tmp_path / "online.db")
    seen: list[Signal] = []
    loop = LiveLoop(engine, store, _Holder(loaded), horizon=60, on_signal=lambda s, ms: seen.append(s))  # type: ignore[arg-type]
    loop.run(warm_up(), max_bars=bars)
    assert loop.stats.errors == 0 and len(seen) == 2 * bars

    source = build_source("simulated", seed=settings.seed)
    kr = {v: source.candles(v, day) for v in ("upbit", "bithumb")}
    batch = labels_with_last_move(
        config, premium=compute_premium(kr, source.candles("binance", day), pl.DataFrame(), day=day)
    )
    moves = {ts: loop._last_moves(loaded, ts) or {} for ts in {s.ts for s in seen}}  # the loop's own rule
    live = pl.DataFrame(
        [(s.ts, s.coin, moves[s.ts].get(s.coin, np.nan)) for s in seen],
        schema={"ts": batch.schema["ts"], "coin": pl.String, "live": pl.Float64},
        orient="row",
    )
    both = batch.join(live, on=["ts", "coin"], how="right").sort("coin", "ts")
    assert both.height == 2 * bars
    want = both[LAST_MOVE].cast(pl.Float64).fill_null(np.nan).to_numpy()
    np.testing.assert_array_equal(both["live"].to_numpy(), want)
    assert np.isnan(want[:60]).all() and len(set(want[~np.isnan(want)])) >= 2  # known after one horizon

    # POST /v1/predict: last_move is sent like any feature; without it, the priors (NaN -> priors)
    from kimp.serving.service import SignalService

    service = SignalService(store, _Holder(loaded), stream=StreamSettings(), features=CONFIG, horizon=60)  # type: ignore[arg-type]
    sent = service.predict({"coin": "BTC", "features": {LAST_MOVE: 2, "prem_fx": 0.01}})
    assert [sent["p_down"], sent["p_flat"], sent["p_up"]] == pytest.approx([0.2, 0.2, 0.6])
    assert sent["missing"] == 0
    unsent = service.predict({"coin": "BTC", "features": {"prem_fx": 0.01}})
    assert [unsent["p_down"], unsent["p_flat"], unsent["p_up"]] == pytest.approx([0.3, 0.5, 0.2])

    mine = sorted(seen, key=lambda s: (s.coin, s.ts))
    frame = both.select("ts", "coin", LAST_MOVE)
    np.testing.assert_allclose(
        [[s.p_down, s.p_flat, s.p_up] for s in mine], model.predict_proba(frame), rtol=1e-12
    )
    store.close()
