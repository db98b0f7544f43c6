"""The agents' walk-forward study (kimp.rl.study) on two days of the real hourly fixture, with a tiny
PPO: the agent of each day is trained before D minus the embargo, its signals in the study are what it
plays on D, the strategies' days are chained (each day continues from the previous day's closing state),
and a second run reuses the saved agents and gives the same table. The ensemble's walk-forward is the
model assets' (tested with them) and is off here."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from kimp.backtest import run_vectorized
from kimp.rl.config import RLSettings
from kimp.rl.episodes import previous_market
from kimp.rl.study import Study, markdown
from kimp.rl.walk_forward import act_day
from kimp.settings import Settings

FIXTURE = Path(__file__).parent / "fixtures" / "real_hourly"
START, END = date(2018, 1, 10), date(2018, 1, 11)


def test_study_chains_days_and_reuses_its_agents(tmp_path: Path) -> None:
    rl = RLSettings(window_days=4, total_timesteps=256, n_envs=2)
    settings = Settings(home=tmp_path, source="files", data_dir=str(FIXTURE), rl=rl)
    study = Study(settings, START, END, kr_venues=("bithumb",), coins=("BTC", "ETH"), agents=("ppo",),
                  with_ensemble=False)  # fmt: skip
    table = study.run(progress=False)
    assert sorted(set(table["strategy"])) == ["ppo", "zscore"] and table.height == 4
    assert (table["days"] == 2).all() and (table["flat_days"] == 0).all()
    # Honest: each day's agent trained on bars closing at or before D 00:00 - embargo.
    for card in study.cards:
        day = date.fromisoformat(card["day"])
        assert card["last_train_bar_close"] <= str(study.walk_forward().cutoff(day))
        assert card["train_episodes"] > 0 and card["steps"] >= 256
    # The ppo row is the agent's own play on D, chained: day 2 continues day 1's closing state.
    agents = {c["day"]: study.folder / "ppo" / c["day"] for c in study.cards}
    from kimp.rl.agents import Agent

    tables = study.tables()
    markets = [m for m in study_markets(study, tables) if m.coin == "BTC"]
    closing, equity = None, []
    for day in (START, END):
        market = next(m for m in markets if m.partition == str(day))
        agent = Agent.load(agents[str(day)])
        signals, _ = act_day(agent, market, history=previous_market(markets, market))
        result = run_vectorized(market, signals, study.walk_forward().backtest, start=closing)
        closing = result.closing
        equity.append(result.equity["equity"].to_numpy())
    row = table.filter((pl.col("strategy") == "ppo") & (pl.col("coin") == "BTC")).row(0, named=True)
    curve = np.concatenate(equity)
    assert row["total_return"] == curve[-1] / row["capital"] - 1
    # A second run loads the saved agents (no training) and reproduces the table.
    again = Study(settings, START, END, kr_venues=("bithumb",), coins=("BTC", "ETH"), agents=("ppo",),
                  with_ensemble=False)  # fmt: skip
    assert again.run(progress=False).equals(table)
    assert [c["train_seconds"] for c in again.cards] == [c["train_seconds"] for c in study.cards]
    text = markdown(table, study.cards)
    assert "| bithumb | BTC | ppo |" in text and "| ppo | 2 |" in text


def study_markets(study: Study, tables: dict[str, pl.DataFrame]) -> list:
    from kimp.rl.episodes import day_markets

    markets, _ = day_markets(
        tables["premium"].filter(pl.col("ts").dt.date() >= START - timedelta(days=1)),
        tables["candles"],
        pl.DataFrame(),
        coins=("BTC",),
        kr_venue="bithumb",
        config=study.walk_forward().backtest,
    )
    return markets
