"""The gymnasium environment: the spread trade of one coin, bar by bar, through the backtest's kernel.

Each ``reset`` picks an episode (a day, or a configured span, of one coin on one Korean venue) from the
episodes it was given, with its own seeded generator (or the one named by ``options={"episode": k}``).
Each ``step`` is one bar: the action becomes a target (:func:`kimp.rl.kernel.target_of`), the guard rails
and the backtest's rule act on it at the bar close, the next bar opens, and the reward and the next
observation come back. All per-bar work is one numba call (:func:`kimp.rl.kernel.step`); Python only
converts the action and returns the tuple. See docs/rl.md for the observation, actions and reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from kimp.backtest import kernel as BK
from kimp.rl import kernel as K
from kimp.rl.config import ActionKind, EnvConfig
from kimp.rl.episodes import Episode, Play, env_params
from kimp.rl.observation import feature_names


class SpreadTradingEnv(gym.Env):
    """Gymnasium environment over a list of :class:`Episode` (all with the same features)."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(
        self,
        episodes: Sequence[Episode],
        config: EnvConfig | None = None,
        *,
        action: ActionKind = "continuous",
        seed: int | None = None,
    ) -> None:
        if not episodes:
            raise ValueError("SpreadTradingEnv needs at least one episode")
        widths = {e.feats.shape[1] for e in episodes}
        if len(widths) != 1:
            raise ValueError(
                f"episodes have different feature counts {sorted(widths)}: build them with one EnvConfig"
            )
        self.episodes = list(episodes)
        self.config = config or EnvConfig()
        self.action_kind: ActionKind = action
        self.names = feature_names(self.config)
        width = widths.pop() + K.N_DYNAMIC
        if width != len(self.names):
            raise ValueError(f"episodes have {width} observation columns, the config names {len(self.names)}")
        clip = np.float32(max(self.config.obs_clip, 100.0))  # positions and PnL are clipped in the kernel
        self.observation_space = gym.spaces.Box(-clip, clip, shape=(width,), dtype=np.float32)
        if action == "continuous":
            self.action_space: gym.spaces.Space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        elif action == "discrete":
            self.action_space = gym.spaces.Discrete(self.config.n_discrete_actions)
        else:
            raise ValueError(f"action must be continuous or discrete, got {action!r}")
        longest = max(e.n for e in self.episodes)
        # Record buffers sized for the longest episode (two fills a bar at most, one of anything else).
        self._trades = np.empty((2 * longest + 16, 10))
        self._rej = np.empty((longest + 16, 5))
        self._xfer = np.empty((longest + 16, 6))
        self._kills = np.empty((longest + 16, K.KILL_COLS))
        self._equity = np.empty(longest)
        self._targets = np.empty(longest)
        self._obs = np.zeros(width, dtype=np.float32)  # the kernel writes the observation in float32
        self._S = np.zeros(BK.N_STATE)
        self._R = np.zeros(K.N_R)
        self._Q = [env_params(self.config, e.config, e.market, action) for e in self.episodes]
        self._ep: Episode = self.episodes[0]
        self._q = self._Q[0]
        self._index = 0
        self._discrete = action == "discrete"
        self._started = False
        if seed is not None:
            self.action_space.seed(seed)
            self.reset(seed=seed)

    # --- gymnasium API ---------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "episode" in options:
            k = int(options["episode"])
            if not 0 <= k < len(self.episodes):
                raise ValueError(f"episode {k} out of range 0..{len(self.episodes) - 1}")
        else:
            k = int(self.np_random.integers(len(self.episodes)))
        self._index = k
        ep = self._ep = self.episodes[k]
        self._q = self._Q[k]
        n = ep.n
        K.reset(ep.ts, ep.bars, ep.params, self._S, self._R, self._q)
        K.observe(0, ep.feats, ep.bars, ep.params, self._S, self._R, self._q, self._obs)
        self._equity[:n] = np.nan
        self._started = True
        return self._obs.copy(), {"market": ep.key}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        try:  # the common cases first: an array of one float (continuous), an integer (discrete)
            a = float(action) if self._discrete else float(action[0])
        except (TypeError, IndexError):
            a = float(np.asarray(action).reshape(-1)[0])
        ep = self._ep
        reward, done = K.step(
            a,
            ep.ts,
            ep.tradable,
            ep.bars,
            ep.feats,
            ep.params,
            self._S,
            self._R,
            self._q,
            self._trades,
            self._rej,
            self._xfer,
            self._kills,
            self._equity,
            self._targets,
            self._obs,
        )
        info: dict[str, Any] = {}
        if done:
            self._started = False
            info = self.summary()
        return self._obs.copy(), float(reward), bool(done), False, info

    # --- what the episode did ----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Final equity, PnL, fills, kill-switch trips of the current episode so far."""
        R = self._R
        cap = float(self._ep.params[BK.P_CAP_TOTAL])
        return {
            "market": self._ep.key,
            "final_equity": float(R[K.R_E_POST]),
            "pnl": float(R[K.R_E_POST] - cap),
            "fills": int(R[K.R_NTR]),
            "kill_switch": int(R[K.R_NKILL]),
        }

    def play(self) -> Play:
        """Copies of the current episode's records (call after it is done, or at any point)."""
        R = self._R
        n = int(R[K.R_BAR]) + (1 if R[K.R_DONE] else 0)
        return Play(
            targets=self._targets[:n].copy(),
            equity=self._equity[:n].copy(),
            trades=self._trades[: int(R[K.R_NTR])].copy(),
            rejections=self._rej[: int(R[K.R_NREJ])].copy(),
            transfers=self._xfer[: int(R[K.R_NX])].copy(),
            kills=self._kills[: int(R[K.R_NKILL])].copy(),
            state=self._S.copy(),
            total_reward=float("nan"),
        )

    @property
    def episode(self) -> Episode:
        return self._ep


def play_targets(episode: Episode, targets: np.ndarray, config: EnvConfig | None = None) -> Play:
    """Drive one episode with a fixed target per bar (continuous actions), entirely in numba: the path
    that parity with ``run_vectorized`` is proven on."""
    cfg = config or EnvConfig()
    n = episode.n
    targets_in = np.ascontiguousarray(targets, dtype=np.float64)
    if targets_in.shape != (n,):
        raise ValueError(f"need one target per bar ({n}), got shape {targets_in.shape}")
    trades = np.empty((2 * n + 16, 10))
    rej = np.empty((n + 16, 5))
    xfer = np.empty((n + 16, 6))
    kills = np.empty((n + 16, K.KILL_COLS))
    equity = np.empty(n)
    sent = np.empty(n)
    S = np.zeros(BK.N_STATE)
    R = np.zeros(K.N_R)
    Q = env_params(cfg, episode.config, episode.market, "continuous")
    total = K.run_targets(
        targets_in, episode.ts, episode.tradable, episode.bars, episode.feats, episode.params, S, R, Q,
        trades, rej, xfer, kills, equity, sent,
    )  # fmt: skip
    return Play(
        targets=sent,
        equity=equity,
        trades=trades[: int(R[K.R_NTR])].copy(),
        rejections=rej[: int(R[K.R_NREJ])].copy(),
        transfers=xfer[: int(R[K.R_NX])].copy(),
        kills=kills[: int(R[K.R_NKILL])].copy(),
        state=S,
        total_reward=float(total),
    )
