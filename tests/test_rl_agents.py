"""The agents: seeded and reproducible training (PPO and Dueling DQN with prioritized replay), saving and
loading, and the walk-forward's honesty (the agent of day D never sees D minus the embargo or later).
Tiny training runs on real-format hourly data (tests/fixtures/real_hourly); real ones are in the
benchmark and docs/rl.md."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kimp.backtest import BacktestConfig, run_vectorized
from kimp.rl import AgentConfig, EnvConfig, build_episodes, day_markets
from kimp.rl.agents import Agent, train
from kimp.rl.strategy import agent_signals, select_agent
from kimp.rl.walk_forward import RLWalkForward, act_day, train_day

FIXTURE = Path(__file__).parent / "fixtures" / "real_hourly"
FIRST, LAST = date(2018, 1, 2), date(2018, 1, 12)
DAY = date(2018, 1, 10)  # the day the walk-forward agent acts on
TINY = {
    "ppo": AgentConfig(kind="ppo", total_timesteps=512, n_envs=2, n_steps=128, batch_size=64, n_epochs=2),
    "dqn": AgentConfig(
        kind="dqn",
        total_timesteps=400,
        n_envs=2,
        learning_starts=100,
        buffer_size=2_000,
        target_update_freq=50,
    ),
}


@pytest.fixture(scope="module")
def tables() -> dict[str, pl.DataFrame]:
    from kimp.market_data.files import FilesSource
    from kimp.premium import compute_premium

    src = FilesSource(FIXTURE)
    premium, candles = [], []
    day = FIRST
    while day <= LAST:
        c = {v: src.candles(v, day) for v in ("bithumb", "binance")}
        fx = pl.concat([src.fx(day - timedelta(days=k)) for k in range(7, -1, -1)])
        premium.append(compute_premium({"bithumb": c["bithumb"]}, c["binance"], fx, day=day))
        candles.extend(c.values())
        day += timedelta(days=1)
    return {"premium": pl.concat(premium), "candles": pl.concat(candles), "orderbook": pl.DataFrame()}


@pytest.fixture(scope="module")
def episodes(tables):
    cfg = BacktestConfig()
    markets, notes = day_markets(
        tables["premium"],
        tables["candles"],
        tables["orderbook"],
        coins=["BTC", "ETH"],
        kr_venue="bithumb",
        config=cfg,
    )
    assert len(markets) == 22 and not notes
    return build_episodes(markets, cfg, EnvConfig())


@pytest.mark.parametrize("kind", ["ppo", "dqn"])
def test_training_is_seeded_reproducible_and_survives_saving(kind: str, episodes, tmp_path: Path) -> None:
    train_eps, held_out = episodes[:-4], episodes[-4:]
    first = train(train_eps, EnvConfig(), TINY[kind])
    again = train(train_eps, EnvConfig(), TINY[kind])
    other = train(train_eps, EnvConfig(), dataclasses.replace(TINY[kind], seed=8))
    assert first.report.steps >= TINY[kind].total_timesteps and not first.report.budget_hit
    plays = [first.play(ep) for ep in held_out]
    for ep, play in zip(held_out, plays, strict=True):
        np.testing.assert_array_equal(again.play(ep).targets, play.targets)
    assert any(
        not np.array_equal(other.play(ep).targets, p.targets) for ep, p in zip(held_out, plays, strict=True)
    )
    if kind == "dqn":  # quarter steps only
        assert set(np.unique(np.concatenate([p.targets for p in plays]))) <= set(np.arange(-4, 5) / 4)
    loaded = Agent.load(first.save(tmp_path / kind))
    assert loaded.kind == kind and loaded.report.steps == first.report.steps
    np.testing.assert_array_equal(loaded.play(held_out[0]).targets, plays[0].targets)
    # As a strategy: the saved agent's signals on the day's market, warmed up on the day before.
    yesterday = episodes[-6].market
    assert (yesterday.coin, held_out[0].market.coin) == ("BTC", "BTC")
    signals, notes = agent_signals(tmp_path / kind, held_out[0].market, history=yesterday)
    np.testing.assert_array_equal(signals["target"].to_numpy(), plays[0].targets)
    assert len(notes) == plays[0].kills.shape[0]
    _backtested_as_a_strategy(kind, tmp_path / kind)


def _backtested_as_a_strategy(kind: str, path: Path) -> None:
    """The registered strategy (and ``rl``, which picks it) in the daily backtest: its targets are the saved
    agent's on the day's market, warmed up on the day before as the previous day's stored rows hold it."""
    from kimp.backtest import market_from_tables
    from kimp.backtest.daily import DayConfig, backtest_day
    from kimp.market_data.files import FilesSource
    from kimp.premium import compute_premium

    src = FilesSource(FIXTURE)
    config = DayConfig(strategies=(kind, "rl"), coins=("BTC",), kr_venues=("bithumb",))
    cards = {kind: {"path": str(path), "val_sharpe": 0.5, "agent": kind}}
    previous, markets = None, []
    for day in (DAY - timedelta(days=1), DAY):
        c = {v: src.candles(v, day) for v in ("bithumb", "binance")}
        fx = pl.concat([src.fx(day - timedelta(days=k)) for k in range(7, -1, -1)])
        premium = compute_premium({"bithumb": c["bithumb"]}, c["binance"], fx, day=day)
        candles = pl.concat(list(c.values()))
        ran = backtest_day(
            day, "normal", premium=premium, candles=candles, orderbook=pl.DataFrame(), config=config,
            agents=cards, previous=previous,
        )  # fmt: skip
        previous = ran.frame
        markets.append(market_from_tables(premium, candles, pl.DataFrame(), coin="BTC", kr_venue="bithumb"))
    assert sorted(set(ran.strategies)) == sorted({kind, "rl"}) and ran.frame["continued"].all()
    assert any(note.startswith(f"rl chose {kind}") for note in ran.notes)
    expected, _ = agent_signals(path, markets[1], history=markets[0])
    for result, strategy in zip(ran.results, ran.strategies, strict=True):
        np.testing.assert_array_equal(result.records.target, expected["target"].to_numpy(), err_msg=strategy)


def test_time_budget_stops_training_and_says_so(episodes) -> None:
    cfg = dataclasses.replace(TINY["ppo"], total_timesteps=1_000_000, max_train_seconds=0.5)
    agent = train(episodes[:4], EnvConfig(), cfg)
    assert agent.report.budget_hit and agent.report.steps < 1_000_000


def test_agent_of_day_d_never_sees_d_minus_the_embargo(tables) -> None:
    wf = RLWalkForward(window_days=5, embargo_minutes=60, kr_venues=("bithumb",))
    cutoff = wf.cutoff(DAY)
    trained = train_day(DAY, "ppo", tables, wf, TINY["ppo"])
    # Asserted from what it trained on: bars closing at or before D 00:00 - 60 min; the window's last
    # day is cut there; the last window day is held out for validation.
    assert trained.last_bar_close is not None and trained.last_bar_close <= cutoff
    assert trained.last_bar_close == cutoff  # the 22:00 bar of D-1 closes at 23:00
    assert all(str(DAY) not in key and "2018-01-04" not in key for key in trained.train_episodes)
    assert trained.validation_episodes == ["BTC/bithumb 2018-01-09", "ETH/bithumb 2018-01-09"]
    assert np.isfinite(trained.metrics["total_return"])
    card = trained.card()
    assert card["cutoff"] == cutoff and card["train_episodes"] == 8 and not card["budget_hit"]
    # Data on and after the cutoff changes nothing: the same agent from tables cut at the cutoff.
    cut = {
        k: v.filter(pl.col("ts") < cutoff - timedelta(hours=1)) if v.height else v for k, v in tables.items()
    }
    blind = train_day(DAY, "ppo", cut, wf, TINY["ppo"])
    markets, _ = day_markets(
        tables["premium"], tables["candles"], tables["orderbook"], coins=["BTC"], kr_venue="bithumb",
        config=wf.backtest,
    )  # fmt: skip
    today = next(m for m in markets if m.partition == str(DAY))
    yesterday = next(m for m in markets if m.partition == str(DAY - timedelta(days=1)))
    signals, play = act_day(trained.agent, today, history=yesterday)
    blind_signals, _ = act_day(blind.agent, today, history=yesterday)
    assert signals.equals(blind_signals)
    # As a strategy: the agent's targets through run_vectorized give exactly the episode it played.
    vec = run_vectorized(today, signals, wf.backtest)
    np.testing.assert_array_equal(vec.equity["equity"].to_numpy(), play.equity)
    assert vec.trades.height == play.trades.shape[0]


def test_a_window_without_data_is_a_clear_error(tables) -> None:
    wf = RLWalkForward(window_days=3, kr_venues=("bithumb",))
    with pytest.raises(ValueError, match="no tradable day of bithumb in the training window"):
        train_day(date(2018, 3, 1), "dqn", tables, wf, TINY["dqn"])


def test_selection_rule_picks_the_best_validation_sharpe() -> None:
    cards = [
        {"agent": "ppo", "val_sharpe": 0.4},
        {"agent": "dqn", "val_sharpe": 1.2},
        {"agent": "other", "val_sharpe": float("nan")},
    ]
    assert select_agent(cards)["agent"] == "dqn"  # type: ignore[index]
    assert select_agent(cards[:1] + cards[2:])["agent"] == "ppo"  # type: ignore[index]
    assert select_agent(cards[2:]) is None
