"""Reinforcement-learning agents for the spread trade, trained on the backtester's own accounting.

- :mod:`kimp.rl.env`: ``SpreadTradingEnv``, a gymnasium environment whose every bar goes through the
  backtest's kernel (the same sizing, limits, inventory, fees, slippage, impact, FX, funding and transfers
  as ``run_vectorized``; parity is tested bit for bit), with a kill switch on top.
- :mod:`kimp.rl.agents`: PPO (stable-baselines3, continuous target) and Dueling DQN with prioritized
  replay (tianshou, hold / buy / sell in steps); train, act, save, load.
- :mod:`kimp.rl.walk_forward`: the agent of day D trained on the window before D minus the embargo, and
  its targets on day D as backtest signals.

Observation, actions and the reward's formula: docs/rl.md. Importing this package is cheap (the configs);
the rest loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from kimp.rl.config import AGENTS, AgentConfig, EnvConfig, KillSwitch

_LAZY = {
    "Episode": "kimp.rl.episodes",
    "Play": "kimp.rl.episodes",
    "build_episodes": "kimp.rl.episodes",
    "day_markets": "kimp.rl.episodes",
    "feature_names": "kimp.rl.observation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kimp.rl' has no attribute {name!r}")


__all__ = [
    "AGENTS",
    "AgentConfig",
    "EnvConfig",
    "Episode",
    "KillSwitch",
    "Play",
    "build_episodes",
    "day_markets",
    "feature_names",
]
