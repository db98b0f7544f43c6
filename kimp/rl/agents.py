"""The two agents: PPO (stable-baselines3) sizing a continuous target, and a Dueling DQN with prioritized
replay (tianshou) choosing hold / buy / sell in steps. Train, act, save, load.

Both learn in :class:`~kimp.rl.env.SpreadTradingEnv` over vectorized copies of the environment (one per
``AgentConfig.n_envs``, each seeded ``seed + k``), with torch on ``threads`` threads (1 by default: on a
shared 2-core machine more threads made PPO 20x slower), seeded everywhere (``random``, NumPy, torch, the
environments' generators and action spaces). Training stops at ``total_timesteps`` or at the
``max_train_seconds`` budget, whichever comes first; the report says which.

A saved agent is a folder: ``agent.json`` (kind, the environment, agent and backtest configs, the
observation's feature names and catalog-feature scaling, the training report) plus the network:
``ppo.zip`` (SB3's own format) or ``dqn.pt`` (the dueling network's state dict).
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from kimp.backtest.config import BacktestConfig
from kimp.rl.config import AgentConfig, EnvConfig, KillSwitch
from kimp.rl.env import SpreadTradingEnv
from kimp.rl.episodes import Episode, Play
from kimp.rl.observation import feature_names

Progress = Callable[[int, int], None]  # (steps done, total steps)


@dataclass
class TrainReport:
    """What a training run did: steps reached, seconds, whether the time budget stopped it, and the
    mean PnL (KRW) and reward of the last training episodes."""

    steps: int = 0
    seconds: float = 0.0
    budget_hit: bool = False
    episodes: int = 0
    mean_pnl_last: float = float("nan")
    mean_reward_last: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Agent:
    """A trained agent: its policy and everything needed to rebuild its observation."""

    kind: str
    env_config: EnvConfig
    agent_config: AgentConfig
    backtest_config: BacktestConfig
    policy: Any
    catalog_stats: tuple[np.ndarray, np.ndarray] | None = None
    report: TrainReport = field(default_factory=TrainReport)

    @property
    def action_kind(self) -> str:
        return self.agent_config.action_kind

    def act(self, obs: np.ndarray) -> np.ndarray | int:
        """The deterministic action for one observation (the policy's mean for PPO, argmax Q for DQN)."""
        import torch

        if self.kind == "ppo":
            action, _ = self.policy.predict(obs, deterministic=True)
            return np.asarray(action, dtype=np.float32)
        with torch.no_grad():
            q, _ = self.policy(torch.as_tensor(obs[None], dtype=torch.float32))
        return int(q.argmax(dim=1)[0])

    def play(self, episode: Episode) -> Play:
        """Play ``episode`` deterministically through the environment; its records (targets after the
        guard rails, fills, equity, kill-switch trips)."""
        env = SpreadTradingEnv([episode], self.env_config, action=self.action_kind)  # type: ignore[arg-type]
        obs, _ = env.reset(options={"episode": 0})
        total = 0.0
        done = False
        with _threads(self.agent_config.threads):
            while not done:
                obs, reward, done, _, _ = env.step(self.act(obs))
                total += reward
        return dataclasses.replace(env.play(), total_reward=total)

    # --- persistence -------------------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "type": f"rl-{self.kind}",
            "kind": self.kind,
            "env_config": _plain(self.env_config),
            "agent_config": _plain(self.agent_config),
            "backtest_config": _plain(self.backtest_config),
            "features": feature_names(self.env_config),
            "catalog_stats": None
            if self.catalog_stats is None
            else [self.catalog_stats[0].tolist(), self.catalog_stats[1].tolist()],
            "report": dataclasses.asdict(self.report),
        }
        if self.kind == "ppo":
            self.policy.save(path / "ppo.zip")
        else:
            import torch

            torch.save(self.policy.state_dict(), path / "dqn.pt")
        (path / "agent.json").write_text(json.dumps(meta, indent=2, default=str))
        return path

    @staticmethod
    def load(path: Path) -> Agent:
        path = Path(path)
        sidecar = path / "agent.json"
        if not sidecar.exists():
            raise FileNotFoundError(f"{path}: no agent.json; expected a folder written by Agent.save()")
        meta = json.loads(sidecar.read_text())
        env_cfg = _env_config(meta["env_config"])
        agent_cfg = AgentConfig(**_tuples(meta["agent_config"]))
        bt_cfg = _backtest_config(meta["backtest_config"])
        stats = meta.get("catalog_stats")
        if meta["kind"] == "ppo":
            from stable_baselines3 import PPO

            policy = PPO.load(path / "ppo.zip", device="cpu")
        else:
            import torch

            policy = _dueling_net(len(meta["features"]), env_cfg.n_discrete_actions, agent_cfg)
            policy.load_state_dict(torch.load(path / "dqn.pt", map_location="cpu", weights_only=True))
            policy.eval()
        return Agent(
            kind=meta["kind"],
            env_config=env_cfg,
            agent_config=agent_cfg,
            backtest_config=bt_cfg,
            policy=policy,
            catalog_stats=None if stats is None else (np.asarray(stats[0]), np.asarray(stats[1])),
            report=TrainReport(**meta.get("report", {})),
        )


def train(
    episodes: Sequence[Episode],
    env_config: EnvConfig,
    agent_config: AgentConfig,
    *,
    catalog_stats: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> Agent:
    """Train an agent of ``agent_config.kind`` on ``episodes`` (seeded; see the module docstring)."""
    if not episodes:
        raise ValueError("no training episodes: the window holds no tradable day")
    configs = {e.config for e in episodes}
    if len(configs) != 1:
        raise ValueError("training episodes must share one BacktestConfig (the accounting they learn under)")
    _seed_everything(agent_config.seed)
    with _threads(agent_config.threads):
        if agent_config.kind == "ppo":
            policy, report = _train_ppo(episodes, env_config, agent_config, progress)
        else:
            policy, report = _train_dqn(episodes, env_config, agent_config, progress)
    return Agent(
        kind=agent_config.kind,
        env_config=env_config,
        agent_config=agent_config,
        backtest_config=configs.pop(),
        policy=policy,
        catalog_stats=catalog_stats,
        report=report,
    )


# --- PPO (stable-baselines3) ---------------------------------------------------------------------------
def _train_ppo(
    episodes: Sequence[Episode], env_cfg: EnvConfig, cfg: AgentConfig, progress: Progress | None
) -> tuple[Any, TrainReport]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv(
        [partial(SpreadTradingEnv, episodes, env_cfg, action="continuous") for _ in range(cfg.n_envs)]
    )
    model = PPO(
        "MlpPolicy",
        venv,
        learning_rate=cfg.lr,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_range,
        ent_coef=cfg.ent_coef,
        policy_kwargs={"net_arch": list(cfg.hidden)},
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )
    # A logger with no outputs: SB3's default one creates an SB3-<time> folder in the temp directory.
    model.set_logger(Logger(folder=None, output_formats=[]))
    report = TrainReport()
    tracker = _EpisodeTracker()
    start = time.perf_counter()

    class Budget(BaseCallback):  # type: ignore[misc]
        def _on_step(self) -> bool:
            for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
                if done:
                    tracker.add(info)
            if progress is not None and self.num_timesteps % 1024 < cfg.n_envs:
                progress(self.num_timesteps, cfg.total_timesteps)
            if time.perf_counter() - start > cfg.max_train_seconds:
                report.budget_hit = True
                return False
            return True

    model.learn(total_timesteps=cfg.total_timesteps, callback=Budget())
    report.steps = int(model.num_timesteps)
    report.seconds = time.perf_counter() - start
    tracker.fill(report)
    venv.close()
    return model, report


# --- Dueling DQN with prioritized replay (tianshou) ---------------------------------------------------
def _dueling_net(obs_dim: int, n_actions: int, cfg: AgentConfig) -> Any:
    from tianshou.utils.net.common import Net

    head = {"hidden_sizes": [cfg.hidden[-1]]}
    return Net(
        state_shape=obs_dim,
        action_shape=n_actions,
        hidden_sizes=list(cfg.hidden),
        dueling_param=(head, head),  # separate advantage and value streams on the shared trunk
    )


def _train_dqn(
    episodes: Sequence[Episode], env_cfg: EnvConfig, cfg: AgentConfig, progress: Progress | None
) -> tuple[Any, TrainReport]:
    from tianshou.algorithm import DQN
    from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, PrioritizedVectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.utils.torch_utils import policy_within_training_step

    _cache_tianshou_kernels()
    envs = DummyVectorEnv(
        [
            partial(SpreadTradingEnv, episodes, env_cfg, action="discrete", seed=cfg.seed + k)
            for k in range(cfg.n_envs)
        ]
    )
    probe = SpreadTradingEnv(episodes[:1], env_cfg, action="discrete")
    net = _dueling_net(probe.observation_space.shape[0], env_cfg.n_discrete_actions, cfg)  # type: ignore[index]
    policy = DiscreteQLearningPolicy(
        model=net, action_space=probe.action_space, eps_training=cfg.eps_start, eps_inference=0.0
    )
    algo = DQN(
        policy=policy,
        optim=AdamOptimizerFactory(lr=cfg.lr),
        gamma=cfg.gamma,
        n_step_return_horizon=cfg.n_step_return,
        target_update_freq=cfg.target_update_freq,
        is_double=True,
    )
    buffer = PrioritizedVectorReplayBuffer(
        total_size=cfg.buffer_size, buffer_num=cfg.n_envs, alpha=cfg.prio_alpha, beta=cfg.prio_beta
    )
    collector = Collector(algo, envs, buffer, exploration_noise=True)
    collector.reset()
    report = TrainReport()
    tracker = _EpisodeTracker()
    start = time.perf_counter()
    steps = 0
    warmup = min(cfg.learning_starts, cfg.total_timesteps)
    with policy_within_training_step(policy):
        stats = collector.collect(n_step=max(warmup, cfg.n_envs), random=True)
        steps += stats.n_collected_steps
        tracker.add_returns(stats)
        decay = max(1, int(cfg.eps_fraction * cfg.total_timesteps))
        while steps < cfg.total_timesteps:
            frac = min(1.0, steps / decay)
            policy.set_eps_training(cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start))
            buffer.set_beta(cfg.prio_beta + (1.0 - cfg.prio_beta) * steps / cfg.total_timesteps)
            stats = collector.collect(n_step=cfg.collect_steps)
            steps += stats.n_collected_steps
            tracker.add_returns(stats)
            for _ in range(cfg.updates_per_collect):
                algo.update(sample_size=cfg.dqn_batch_size, buffer=buffer)
            if progress is not None and steps % 1024 < cfg.collect_steps:
                progress(steps, cfg.total_timesteps)
            if time.perf_counter() - start > cfg.max_train_seconds:
                report.budget_hit = True
                break
    report.steps = steps
    report.seconds = time.perf_counter() - start
    tracker.fill(report)
    envs.close()
    net.eval()
    return net, report


# --- helpers ------------------------------------------------------------------------------------------
class _EpisodeTracker:
    """Mean PnL and reward of the last 50 finished training episodes."""

    def __init__(self) -> None:
        self.pnl: list[float] = []
        self.reward: list[float] = []
        self.count = 0

    def add(self, info: dict[str, Any]) -> None:
        if "pnl" in info:
            self.pnl = [*self.pnl[-49:], float(info["pnl"])]
            self.count += 1

    def add_returns(self, stats: Any) -> None:
        returns = getattr(stats, "returns", None)
        if returns is not None and len(returns):
            self.reward = [*self.reward, *map(float, returns)][-50:]
            self.count += len(returns)

    def fill(self, report: TrainReport) -> None:
        report.episodes = self.count
        if self.pnl:
            report.mean_pnl_last = float(np.mean(self.pnl))
        if self.reward:
            report.mean_reward_last = float(np.mean(self.reward))


def _cache_tianshou_kernels() -> None:
    """Give tianshou's numba functions (n-step returns, buffer indices, the priority segment tree) an
    on-disk cache, as ``@njit(cache=True)`` would: tianshou compiles them in every process, which cost
    20-70 s per training run on the shared machine (docs/decisions.md)."""
    import importlib

    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name in (
        "tianshou.algorithm.algorithm_base",
        "tianshou.data.buffer.manager",
        "tianshou.data.utils.segtree",
    ):
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):
                value.enable_caching()


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)  # tianshou's exploration and prioritized sampling draw from NumPy's global RNG
    torch.manual_seed(seed)


class _threads:
    """torch on ``n`` threads inside the block (restored after)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.before = 0

    def __enter__(self) -> None:
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.before)


def _plain(cfg: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _env_config(d: dict[str, Any]) -> EnvConfig:
    d = _tuples(d)
    d["kill_switch"] = KillSwitch(**d["kill_switch"])
    return EnvConfig(**d)


def _backtest_config(d: dict[str, Any]) -> BacktestConfig:
    from kimp.backtest import config as C

    costs = d.pop("costs")
    fees = {k: C.VenueFees(**costs.pop(k)) for k in ("upbit", "bithumb", "binance_spot", "binance_perp")}
    models = {
        "slippage": C.SlippageModel(**costs.pop("slippage")),
        "impact": C.ImpactModel(**costs.pop("impact")),
        "fx": C.FxConversionModel(**costs.pop("fx")),
        "funding": C.FundingModel(**costs.pop("funding")),
        "transfer": C.TransferModel(**costs.pop("transfer")),
    }
    return BacktestConfig(**d, costs=C.CostConfig(**fees, **models))
