"""The daily backtest on its production path: the strategy registry, ``backtest_day`` in the domain and
the ``backtest_report`` asset continuing from the previous day's closing state (positions carry across
days), so that days materialized one by one equal one continuous run, and ``backtest_summary``'s range
rows are that run's figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import AssetSelection, DagsterInstance, MultiPartitionKey, materialize

from kimp.backtest import BacktestConfig, market_from_tables, run_event_driven, run_vectorized, strategies
from kimp.backtest.daily import DayConfig, backtest_day, unpack_carry
from kimp.backtest.signals import prediction_signals, zscore_signals
from kimp.market_data.source import build_source
from kimp.premium import compute_premium
from kimp.settings import BacktestSettings, Settings
from kimp.storage import ParquetStore
from kimp_pipelines.definitions import build_definitions

DAYS = [date(2024, 3, 1) + timedelta(days=k) for k in range(3)]
CANDLES = ("upbit", "bithumb", "binance")


@pytest.fixture(scope="module")
def tables() -> dict[date, dict[str, pl.DataFrame]]:
    """Three simulated days (1-minute bars, a book snapshot every 15 s), per day as the store holds them."""
    src = build_source("simulated", orderbook_interval_ms=15_000)
    out = {}
    for day in DAYS:
        candles = {v: src.candles(v, day) for v in CANDLES}
        fx = pl.concat([src.fx(day - timedelta(days=1)), src.fx(day)])
        premium = compute_premium(
            {"upbit": candles["upbit"], "bithumb": candles["bithumb"]}, candles["binance"], fx, day=day
        )
        book = src.orderbook(day)
        out[day] = {"kimchi_premium": premium, "orderbook_snapshots": book} | {
            f"{v}_candles": c for v, c in candles.items()
        }
    return out


def _predictions(premium: pl.DataFrame) -> pl.DataFrame:
    """Seeded direction probabilities on every BTC bar (a model named 'ensemble')."""
    ts = premium.filter((pl.col("coin") == "BTC") & (pl.col("kr_venue") == "upbit"))["ts"]
    rng = np.random.default_rng(int(ts[0].timestamp()))
    p = rng.dirichlet([1.0, 1.0, 1.0], ts.len())
    return pl.DataFrame(
        {"ts": ts, "coin": "BTC", "horizon": 30, "model": "ensemble"}
        | {"p_down": p[:, 0], "p_flat": p[:, 1], "p_up": p[:, 2]}
    )


def _whole(tables: dict, name: str) -> pl.DataFrame:
    return pl.concat([tables[d][name] for d in DAYS], how="vertical_relaxed")


@dataclass
class Continuous:
    """One run over the three days (fresh rule states, no day-end close-out): the reference."""

    results: dict[tuple[str, str], object]


def _continuous(tables: dict, strategies_: tuple[str, ...]) -> dict[tuple[str, str], object]:
    candles = pl.concat([_whole(tables, f"{v}_candles") for v in CANDLES], how="vertical_relaxed")
    premium = _whole(tables, "kimchi_premium")
    bar = BacktestConfig(fill="bar", flat_at_day_end=False)
    book = BacktestConfig(fill="book", flat_at_day_end=False)
    market = market_from_tables(
        premium, candles, _whole(tables, "orderbook_snapshots"), coin="BTC", kr_venue="upbit", config=bar
    )
    out = {}
    for name in strategies_:
        if name == "zscore":
            signals = zscore_signals(market, window=240, entry_z=2.0, exit_z=0.5)
        else:
            preds = pl.concat([_predictions(tables[d]["kimchi_premium"]) for d in DAYS])
            signals = prediction_signals(market, preds, model=name)
        out[(name, "vectorized")] = run_vectorized(market, signals, bar)
        out[(name, "event_driven")] = run_event_driven(market, signals, book)
    return out


CONFIG = DayConfig(strategies=("zscore", "ensemble"), coins=("BTC",), kr_venues=("upbit",))


def test_days_one_by_one_equal_the_continuous_run_in_the_domain(tables) -> None:  # type: ignore[no-untyped-def]
    previous, days = None, []
    for day in DAYS:
        t = tables[day]
        ran = backtest_day(
            day,
            "normal",
            premium=t["kimchi_premium"],
            candles=pl.concat([t[f"{v}_candles"] for v in CANDLES]),
            orderbook=t["orderbook_snapshots"],
            config=CONFIG,
            predictions=_predictions(t["kimchi_premium"]),
            previous=previous,
        )
        previous = ran.frame
        days.append(ran)
    assert days[0].frame["continued"].sum() == 0 and days[-1].frame["continued"].all()
    whole = _continuous(tables, CONFIG.strategies)
    for (name, engine), ref in whole.items():
        picked = [
            r
            for d in days
            for r, s in zip(d.results, d.strategies, strict=True)
            if (s, r.engine) == (name, engine)
        ]
        trades = pl.concat([r.trades for r in picked])
        assert trades.height > 20 and trades.equals(ref.trades), (name, engine)
        assert np.array_equal(np.concatenate([r.records.equity for r in picked]), ref.records.equity)
    # A position did cross a midnight (the carry is exercised, not only flat days).
    assert any(not unpack_carry(c).closing.flat for c in days[0].frame["carry"])


def test_days_end_flat_when_carry_is_off(tables) -> None:  # type: ignore[no-untyped-def]
    t = tables[DAYS[0]]
    ran = backtest_day(
        DAYS[0],
        "normal",
        premium=t["kimchi_premium"],
        candles=pl.concat([t[f"{v}_candles"] for v in CANDLES]),
        orderbook=t["orderbook_snapshots"],
        config=DayConfig(strategies=("zscore",), coins=("BTC",), kr_venues=("upbit",), carry=False),
    )
    assert all(unpack_carry(c).closing.flat for c in ran.frame["carry"])


def test_the_registry_holds_rules_models_and_agents() -> None:
    from kimp.models import registry as models

    names = strategies.names()
    assert names[0] == "zscore" and {"ensemble", "ppo", "dqn", "rl"} <= set(names)
    assert set(models.names(kind="direction")) <= set(names)  # generated from the model registry
    assert strategies.get("xgboost").kind == "model" and strategies.get("ppo").needs == ("agents",)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        strategies.get("nope")
    with pytest.raises(ValueError, match="no parameter"):
        strategies.get("zscore").make_params({"entry": 1.0})


def test_a_strategy_added_in_one_registration_is_backtested(tables) -> None:  # type: ignore[no-untyped-def]
    def always_long(day, params, state):  # type: ignore[no-untyped-def]
        frame = pl.DataFrame({"ts": day.market.ts_series(), "target": np.full(day.market.n, 0.5)})
        return strategies.StrategySignals(frame, None)

    strategies.register(strategies.Strategy(name="always_long", signals=always_long))
    try:
        t = tables[DAYS[0]]
        ran = backtest_day(
            DAYS[0],
            "normal",
            premium=t["kimchi_premium"],
            candles=pl.concat([t[f"{v}_candles"] for v in CANDLES]),
            orderbook=pl.DataFrame(),
            config=DayConfig(strategies=("always_long",), coins=("BTC",), kr_venues=("upbit",)),
        )
        assert set(ran.frame["strategy"]) == {"always_long"} and (ran.frame["trades"] > 0).all()
    finally:
        strategies.unregister("always_long")


# --- through Dagster: the asset continues from its own previous partition --------------------------------


def _settings(home: Path, carry: bool = True) -> Settings:
    return Settings(
        home=home,
        start_date=date(2024, 2, 1),
        backtest=BacktestSettings(strategies=("zscore",), coins=("BTC",), kr_venues=("upbit",), carry=carry),
    )


def _materialize(settings: Settings, selection: str, key: object, run_config: dict | None = None):  # type: ignore[no-untyped-def]
    defs = build_definitions(settings)
    return materialize(
        list(defs.assets),  # type: ignore[arg-type]
        selection=AssetSelection.assets(selection),
        partition_key=key,  # type: ignore[arg-type]
        resources=defs.resources,
        instance=DagsterInstance.ephemeral(),
        run_config=run_config,
        raise_on_error=False,
    )


def test_backtest_report_materialized_day_by_day_is_one_run(tables, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path / "home")
    store = ParquetStore(str(settings.storage_uri))
    for day in DAYS:
        for name, frame in tables[day].items():
            store.write(name, day.isoformat(), frame)
    for day in DAYS:
        key = MultiPartitionKey({"date": day.isoformat(), "scenario": "normal"})
        assert _materialize(settings, "backtest_report", key).success
    rows = [store.read("backtest_report", f"{d.isoformat()}__normal") for d in DAYS]
    whole = _continuous(tables, ("zscore",))
    for engine in ("vectorized", "event_driven"):
        mine = [r.filter(pl.col("engine") == engine).row(0, named=True) for r in rows]
        ref = whole[("zscore", engine)]
        assert [m["continued"] for m in mine] == [False, True, True]
        assert np.array_equal(np.concatenate([m["equity"] for m in mine]), ref.records.equity)
        assert np.array_equal(
            np.concatenate([m["position"] for m in mine]), ref.equity["position"].to_numpy()
        )
        assert sum(m["trades"] for m in mine) == ref.trades.height > 20
    # A failed day writes nothing: the last good day stays as it was, for the next run to continue from.
    broken = DAYS[-1] + timedelta(days=1)
    store.write("kimchi_premium", broken.isoformat(), tables[DAYS[0]]["kimchi_premium"].head(0))
    key = MultiPartitionKey({"date": broken.isoformat(), "scenario": "normal"})
    assert not _materialize(settings, "backtest_report", key).success
    assert not store.exists("backtest_report", f"{broken.isoformat()}__normal")
    assert store.read("backtest_report", f"{DAYS[-1].isoformat()}__normal").equals(rows[-1])

    # The summary: the day rows, and one range row per market and engine from the concatenated curve.
    config = {
        "ops": {"backtest_summary": {"config": {"start": DAYS[0].isoformat(), "end": DAYS[-1].isoformat()}}}
    }
    assert _materialize(settings, "backtest_summary", None, config).success
    summary = store.read("backtest_summary", None)
    assert summary.filter(pl.col("scope") == "day").height == 2 * len(DAYS)
    ranged = summary.filter(pl.col("scope") == "range")
    assert ranged.height == 2 and ranged["date"].null_count() == 2 and (ranged["days"] == 3).all()
    for engine in ("vectorized", "event_driven"):
        got = ranged.filter(pl.col("engine") == engine).row(0, named=True)
        ref = whole[("zscore", engine)]
        for k in ("total_return", "sharpe", "sortino", "max_drawdown", "calmar"):
            assert got[k] == ref.metrics[k], (engine, k)
        assert got["turnover"] == pytest.approx(ref.metrics["turnover"], rel=1e-12)
        assert got["cost_total"] == pytest.approx(ref.costs["total"], rel=1e-9)
    assert "equity" not in summary.columns and "carry" not in summary.columns


def test_kimp_backtest_trains_the_missing_agents_and_reuses_stored_ones(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import click

    from kimp_pipelines import cli

    settings = _settings(tmp_path / "home").with_backtest(strategies=("zscore", "ppo", "dqn"))
    store = ParquetStore(str(settings.storage_uri))
    store.write("ppo_agent", DAYS[0].isoformat(), pl.DataFrame({"day": [DAYS[0]]}))  # stored: reused
    plans = []
    monkeypatch.setattr(cli, "_materialize", lambda *a, **k: plans.append(k))
    cli._run_backtest(settings, DAYS[0], DAYS[1], with_data=False)
    (plan,) = plans
    assert list(plan["stage_days"]) == ["agents_job", "backtest_job", "reports_job"]  # in dependency order
    assert plan["stage_days"]["agents_job"] == DAYS[:2] and plan["stage_days"]["backtest_job"] == DAYS[:2]
    assert plan["stage_select"]["agents_job"] == "key:ppo_agent or key:dqn_agent"
    # Only zscore: no agent stage. An unknown strategy is a usage error naming the registry.
    plans.clear()
    cli._run_backtest(settings.with_backtest(strategies=("zscore",)), DAYS[0], DAYS[1], with_data=True)
    assert "agents_job" not in plans[0]["stage_days"]
    with pytest.raises(click.BadParameter, match="unknown strategy 'nope'"):
        cli._check_strategies(settings.with_backtest(strategies=("zscore", "nope")))
