"""Validated, frozen configs of the trading environment and of the two agents.

The environment's accounting is a :class:`~kimp.backtest.BacktestConfig` (capital, limits, every cost
model): the agents learn under exactly the rules that judge them. :class:`EnvConfig` adds what only an
agent needs: the observation, the reward, the action set and the kill switch. :class:`AgentConfig` holds
the learning side (algorithm, network, steps, time budget, seed, threads). Formulas: docs/rl.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

AgentKind = Literal["ppo", "dqn"]
ActionKind = Literal["continuous", "discrete"]
AGENTS: tuple[str, ...] = ("ppo", "dqn")


def _positive(name: str, value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be > 0 and finite, got {value}")


@dataclass(frozen=True)
class KillSwitch:
    """Guard rail on top of the backtest's position and capital limits.

    At each bar close, before the agent's decision, the equity marked at that close is compared with
    the equity at the start of the UTC day (``max_daily_loss``, a fraction of it) and with the highest
    equity of the episode (``max_drawdown``). A breach flattens the position at that close and keeps it
    flat: until the next UTC day for the daily loss, until the end of the episode for the drawdown.
    Every trip is recorded (bar, reason, equity) and reported. ``None`` switches a limit off.
    """

    max_daily_loss: float | None = 0.02
    max_drawdown: float | None = 0.05

    def __post_init__(self) -> None:
        for name in ("max_daily_loss", "max_drawdown"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise ValueError(f"kill switch {name} is a fraction in (0, 1) or None, got {value}")


@dataclass(frozen=True)
class EnvConfig:
    """What the agent sees, what it may do and how it is rewarded (formulas in docs/rl.md).

    Observation (per bar, known at its close): the premium's mean over each of ``premium_minutes`` (and
    its level), volume change of both legs over ``volume_minutes``, order-book imbalance of both legs
    (0 without books), RSI, MACD and Bollinger of the premium, the bars left before the day's close-out,
    the round trip's fees,
    the catalog features named in ``catalog_features`` (standardized on the training episodes), then
    the position, the current target, the kill-switch state and the episode's PnL.

    Reward of the decision at bar t (money in KRW, ``C`` = the starting capital):
    ``reward_scale x (E_{t+1} - E_t) / C + dsr_weight x D_t - turnover_penalty x reward_scale x N_t / C``,
    ``E_t`` the equity marked at bar t's close before its decision (after every cost of earlier fills),
    ``D_t`` Moody and Saffell's differential Sharpe ratio of the per-bar returns (adaptation rate
    ``dsr_eta``, the variance floored at ``dsr_min_std`` squared, clipped to +-``dsr_clip``) and ``N_t``
    the notional traded at bar t (both legs).
    """

    premium_minutes: tuple[int, ...] = (1, 5, 15, 60)
    norm_minutes: int = 1440  # the premium's own scale: its mean and std over the last day
    volume_minutes: int = 60
    rsi_bars: int = 14
    macd_bars: tuple[int, int, int] = (12, 26, 9)
    bollinger_bars: int = 20
    catalog_features: tuple[str, ...] = ()
    use_books: bool = True  # False: the book imbalance is 0 (training data loaded without order books)
    reward_scale: float = 10_000.0  # rewards in basis points of capital
    dsr_weight: float = 0.1
    dsr_eta: float = 0.02
    dsr_min_std: float = 1e-4  # 1 bp per bar
    dsr_clip: float = 10.0
    turnover_penalty: float = 0.0  # extra cost per unit of traded notional (0.001 = 10 bp)
    discrete_step: float = 0.25  # DQN: hold, or buy / sell this fraction of capital (1 to 1/step steps)
    kill_switch: KillSwitch = field(default_factory=KillSwitch)
    obs_clip: float = 10.0

    def __post_init__(self) -> None:
        if not self.premium_minutes or min(self.premium_minutes) < 1:
            raise ValueError(f"premium_minutes must be >= 1 minute each, got {self.premium_minutes}")
        for name in ("norm_minutes", "volume_minutes", "rsi_bars", "bollinger_bars"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2, got {getattr(self, name)}")
        fast, slow, signal = self.macd_bars
        if not 1 <= fast < slow or signal < 1:
            raise ValueError(
                f"macd_bars must be (fast, slow, signal) with 1 <= fast < slow, got {self.macd_bars}"
            )
        if len(set(self.catalog_features)) != len(self.catalog_features):
            raise ValueError(f"catalog_features has duplicates: {self.catalog_features}")
        _positive("reward_scale", self.reward_scale)
        _positive("dsr_eta", self.dsr_eta)
        _positive("dsr_min_std", self.dsr_min_std)
        _positive("dsr_clip", self.dsr_clip)
        _positive("obs_clip", self.obs_clip)
        if not 0 <= self.dsr_weight < 100 or not 0 <= self.turnover_penalty < 1:
            raise ValueError(
                f"dsr_weight in [0, 100) and turnover_penalty in [0, 1), got {self.dsr_weight}, "
                f"{self.turnover_penalty}"
            )
        if not self.dsr_eta < 1:
            raise ValueError(f"dsr_eta must be in (0, 1), got {self.dsr_eta}")
        steps = 1 / self.discrete_step if self.discrete_step > 0 else 0
        if not 0 < self.discrete_step <= 1 or abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"discrete_step must divide 1 (0.25, 0.5, 1), got {self.discrete_step}")

    @property
    def discrete_levels(self) -> int:
        """Buy (or sell) sizes of the discrete action set: 1 .. this many steps."""
        return round(1 / self.discrete_step)

    @property
    def n_discrete_actions(self) -> int:
        """hold + buy 1..k steps + sell 1..k steps."""
        return 1 + 2 * self.discrete_levels


@dataclass(frozen=True)
class AgentConfig:
    """How an agent learns. Defaults are sized for one day's training on hourly data within two
    minutes on one busy core (docs/benchmarks.md); a 30-day window of 1-minute bars needs more steps
    (``total_timesteps``) and gets ``max_train_seconds`` up to 10 minutes.

    ``max_train_seconds`` is a hard stop: a run that reaches it stops early, is marked
    ``budget_hit`` in its card and is then not reproducible step for step (the steps it reached
    depend on the machine's load).
    """

    kind: AgentKind = "ppo"
    total_timesteps: int = 30_000
    max_train_seconds: float = 110.0
    n_envs: int = 4
    seed: int = 7
    threads: int = 1
    hidden: tuple[int, ...] = (64, 64)
    gamma: float = 0.99
    learning_rate: float | None = None  # None: 3e-4 for PPO, 1e-3 for DQN
    # PPO (stable-baselines3)
    n_steps: int = 256  # per env and rollout
    batch_size: int = 256
    n_epochs: int = 10
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    # Dueling DQN with prioritized replay (tianshou)
    buffer_size: int = 50_000
    dqn_batch_size: int = 64
    learning_starts: int = 1_000
    collect_steps: int = 16  # env steps (all envs together) between updates
    updates_per_collect: int = 4
    n_step_return: int = 3
    target_update_freq: int = 500
    prio_alpha: float = 0.6
    prio_beta: float = 0.4  # annealed linearly to 1 over the run
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_fraction: float = 0.5  # of the run over which epsilon decays

    def __post_init__(self) -> None:
        if self.kind not in AGENTS:
            raise ValueError(f"agent kind must be one of {AGENTS}, got {self.kind!r}")
        if self.total_timesteps < 1 or self.n_envs < 1 or self.threads < 1:
            raise ValueError("total_timesteps, n_envs and threads must be >= 1")
        _positive("max_train_seconds", self.max_train_seconds)
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden layer sizes must be >= 1, got {self.hidden}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.learning_rate is not None:
            _positive("learning_rate", self.learning_rate)
        if self.n_steps < 2 or self.batch_size < 2 or self.n_epochs < 1 or self.dqn_batch_size < 1:
            raise ValueError("n_steps and batch_size >= 2, n_epochs and dqn_batch_size >= 1 are required")
        if self.buffer_size < self.dqn_batch_size or self.collect_steps < 1 or self.updates_per_collect < 1:
            raise ValueError("buffer_size >= dqn_batch_size, collect_steps >= 1, updates_per_collect >= 1")
        if not 0 < self.prio_alpha <= 1 or not 0 <= self.prio_beta <= 1:
            raise ValueError(
                f"prio_alpha in (0, 1], prio_beta in [0, 1]; got {self.prio_alpha}, {self.prio_beta}"
            )
        if not 0 <= self.eps_end <= self.eps_start <= 1 or not 0 < self.eps_fraction <= 1:
            raise ValueError("need 0 <= eps_end <= eps_start <= 1 and eps_fraction in (0, 1]")

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 3e-4 if self.kind == "ppo" else 1e-3

    @property
    def action_kind(self) -> ActionKind:
        return "continuous" if self.kind == "ppo" else "discrete"


@dataclass(frozen=True)
class RLSettings:
    """The product's daily agents (``ppo_agent``, ``dqn_agent``): their walk-forward window and learning
    budget. The markets they learn on are the backtest's (``BacktestSettings.coins`` and ``kr_venues``),
    under the backtest's default accounting. Order books are off by default: the daily assets would
    otherwise load a whole window of L10 snapshots (about 1.3 GB for 30 days of 5-second simulated
    books), and the real samples have none."""

    window_days: int = 30
    embargo_minutes: int = 60
    validation_fraction: float = 0.15
    span_days: int = 1
    # the learning budget's defaults are the agent's own (AgentConfig): written once
    total_timesteps: int = AgentConfig.total_timesteps
    max_train_seconds: float = AgentConfig.max_train_seconds
    n_envs: int = AgentConfig.n_envs
    env: EnvConfig = field(default_factory=lambda: EnvConfig(use_books=False))

    def __post_init__(self) -> None:
        if self.window_days < 1 or self.embargo_minutes < 0 or self.span_days < 1:
            raise ValueError(
                f"rl window_days >= 1, embargo_minutes >= 0 and span_days >= 1, got {self.window_days}, "
                f"{self.embargo_minutes}, {self.span_days}"
            )
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"rl validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.total_timesteps < 1 or self.n_envs < 1:
            raise ValueError(
                f"rl total_timesteps and n_envs must be >= 1, got {self.total_timesteps}, {self.n_envs}"
            )
        _positive("rl max_train_seconds", self.max_train_seconds)

    def agent(self, kind: str, seed: int) -> AgentConfig:
        """The learning config of one agent under these settings."""
        return AgentConfig(
            kind=kind,  # type: ignore[arg-type]
            total_timesteps=self.total_timesteps,
            max_train_seconds=self.max_train_seconds,
            n_envs=self.n_envs,
            seed=seed,
        )
