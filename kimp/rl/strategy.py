"""The agents as backtest strategies: the agent of day D acts on day D's market.

:func:`agent_signals` loads the agent a card points at, plays it deterministically on the day's market
(the scenario's market in a stress test) with the day before as the observation's warm-up, and returns
the targets it sent after the guard rails (a strategy's signals: ``ts, target``) and one note per
kill-switch trip. Under bar fills ``run_vectorized`` on these targets reproduces the agent's episode
exactly; the event-driven engine executes them against the book where the market has one.

:func:`select_agent` is the selection rule of the ``rl`` strategy (as FinRL's ensemble does): of the
day's agents, the one with the best Sharpe ratio on its held-out validation days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from kimp.backtest.market import Market
from kimp.rl.agents import Agent


@lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int) -> Agent:  # mtime in the key: a retrained day reloads
    return Agent.load(Path(path))


def load_agent(path: str | Path) -> Agent:
    """The agent saved at ``path`` (cached while the folder's agent.json is unchanged)."""
    sidecar = Path(path) / "agent.json"
    if not sidecar.exists():
        raise FileNotFoundError(f"{path}: no agent.json; expected a folder written by Agent.save()")
    return _load(str(path), sidecar.stat().st_mtime_ns)


def agent_signals(
    path: str | Path,
    market: Market,
    *,
    history: Market | None = None,
    catalog: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """(signals ``ts, target``, kill-switch notes) of the agent saved at ``path`` on ``market``."""
    from kimp.rl.walk_forward import act_day

    agent = load_agent(path)
    signals, play = act_day(agent, market, history=history, catalog=catalog)
    notes = [
        f"{agent.kind} {market.coin}/{market.kr_venue}: kill switch {k}" for k in play.kill_report(market)
    ]
    return signals, notes


def select_agent(cards: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The card with the best validation Sharpe (ties: the first; an undefined Sharpe never wins)."""
    best: Mapping[str, Any] | None = None
    for card in cards:
        sharpe = card.get("val_sharpe")
        if sharpe is None or (isinstance(sharpe, float) and math.isnan(sharpe)):
            continue
        if best is None or sharpe > best["val_sharpe"]:
            best = card
    return best
