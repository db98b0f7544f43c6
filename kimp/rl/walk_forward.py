"""Walk-forward for agents, like every model: the agent of day D learns only from the window that ends
before D minus the embargo, then acts on day D.

:func:`train_day` takes the project's tables (premium, candles, order books; optionally catalog features)
covering the window and the day before it (warm-up), keeps only the bars whose close is at or before the
cutoff ``D 00:00 UTC - embargo`` (and asserts it from the episodes it built), splits the window's days
chronologically into training and validation episodes, trains, and scores the agent on the validation
days through the same environment. :func:`act_day` plays a trained agent on day D's market and returns
the targets it sent (after the guard rails), which any backtest engine then runs as the strategy's
signals: under bar fills ``run_vectorized`` reproduces the episode exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from kimp.backtest import kernel as BK
from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import US, Market
from kimp.rl.agents import Agent, Progress, train
from kimp.rl.config import AGENTS, AgentConfig, EnvConfig, RLSettings
from kimp.rl.episodes import Episode, Play, build_episodes, catalog_stats, day_markets
from kimp.timeutil import day_start


@dataclass(frozen=True)
class RLWalkForward:
    """Where an agent's training data comes from. ``window_days`` UTC days before D (the last one cut at
    the cutoff ``D - embargo_minutes``); the last ``validation_fraction`` of them (at least one day when
    the window has two or more) are held out to score the agent; ``span_days`` days per episode; one
    episode per span, coin and Korean venue that has a premium (venues without one are skipped, noted)."""

    # the product's defaults (RLSettings), written once
    window_days: int = RLSettings.window_days
    embargo_minutes: int = RLSettings.embargo_minutes
    validation_fraction: float = RLSettings.validation_fraction
    kr_venues: tuple[str, ...] = ("upbit", "bithumb")
    coins: tuple[str, ...] = ("BTC", "ETH")
    span_days: int = RLSettings.span_days
    env: EnvConfig = field(default_factory=EnvConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)

    def __post_init__(self) -> None:
        if self.window_days < 1 or self.embargo_minutes < 0 or self.span_days < 1:
            raise ValueError("window_days >= 1, embargo_minutes >= 0 and span_days >= 1 are required")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not self.kr_venues or not set(self.kr_venues) <= {"upbit", "bithumb"} or not self.coins:
            raise ValueError(
                f"kr_venues among upbit and bithumb and at least one coin, got {self.kr_venues}, {self.coins}"
            )

    @classmethod
    def from_settings(
        cls,
        rl: RLSettings,
        *,
        coins: tuple[str, ...],
        kr_venues: tuple[str, ...],
        backtest: BacktestConfig | None = None,
    ) -> RLWalkForward:
        """The walk-forward of the product's daily agents: ``Settings.rl`` over the backtest's markets and
        (by default) its default accounting."""
        return cls(
            window_days=rl.window_days,
            embargo_minutes=rl.embargo_minutes,
            validation_fraction=rl.validation_fraction,
            kr_venues=tuple(kr_venues),
            coins=tuple(coins),
            span_days=rl.span_days,
            env=rl.env,
            backtest=backtest or BacktestConfig(),
        )

    def cutoff(self, day: date) -> datetime:
        """Training bars close at or before this instant."""
        return day_start(day) - timedelta(minutes=self.embargo_minutes)

    def window(self, day: date) -> tuple[date, date]:
        """First and last UTC day of the training window (the last one cut at the cutoff)."""
        last = (self.cutoff(day) - timedelta(microseconds=1)).date()
        return day - timedelta(days=self.window_days), last

    def data_days(self, day: date) -> tuple[date, date]:
        """The days of tables :func:`train_day` needs: the window and one day of warm-up before it."""
        first, last = self.window(day)
        return first - timedelta(days=1), last


@dataclass
class TrainedDay:
    """An agent trained for day D, with what it was trained on and how it scored on validation."""

    agent: Agent
    day: date
    cutoff: datetime
    train_episodes: list[str]
    validation_episodes: list[str]
    last_bar_close: datetime | None
    metrics: dict[str, float]
    notes: list[str]

    def card(self) -> dict[str, Any]:
        """One row of facts for the asset's output and MLflow."""
        r = self.agent.report
        return {
            "day": self.day,
            "agent": self.agent.kind,
            "cutoff": self.cutoff,
            "last_train_bar_close": self.last_bar_close,
            "train_episodes": len(self.train_episodes),
            "validation_episodes": len(self.validation_episodes),
            "steps": r.steps,
            "train_seconds": round(r.seconds, 2),
            "budget_hit": r.budget_hit,
            **{f"val_{k}": v for k, v in self.metrics.items()},
        }


def _markets(
    tables: dict[str, pl.DataFrame], cfg: RLWalkForward, *, end: datetime | None
) -> tuple[list[Market], list[str]]:
    markets: list[Market] = []
    notes: list[str] = []
    for venue in cfg.kr_venues:
        found, why = day_markets(
            tables["premium"],
            tables.get("candles", pl.DataFrame()),
            tables.get("orderbook", pl.DataFrame()) if cfg.env.use_books else pl.DataFrame(),
            coins=cfg.coins,
            kr_venue=venue,
            config=cfg.backtest,
            end=end,
            span_days=cfg.span_days,
        )
        markets += found
        notes += why if found else [f"{venue}: no tradable day ({'; '.join(why[:3]) or 'no premium rows'})"]
    markets.sort(key=lambda m: (int(m.ts[0]), m.kr_venue, m.coin))
    return markets, notes


def train_day(
    day: date,
    kind: str,
    tables: dict[str, pl.DataFrame],
    cfg: RLWalkForward,
    agent_config: AgentConfig | None = None,
    *,
    catalog: pl.DataFrame | None = None,
    progress: Progress | None = None,
) -> TrainedDay:
    """Train the ``kind`` agent of day D (see the module docstring). ``tables``: ``premium``, ``candles``,
    ``orderbook`` frames (any superset of :meth:`RLWalkForward.data_days`; later rows are ignored)."""
    if kind not in AGENTS:
        raise ValueError(f"agent must be one of {AGENTS}, got {kind!r}")
    acfg = agent_config or AgentConfig(kind=kind)  # type: ignore[arg-type]
    if acfg.kind != kind:
        raise ValueError(f"agent_config is for {acfg.kind}, asked to train {kind}")
    cutoff = cfg.cutoff(day)
    first, _ = cfg.window(day)
    markets, notes = _markets(tables, cfg, end=cutoff)
    start_us = int(day_start(first).timestamp()) * US
    history = [m for m in markets if m.ts[0] < start_us]
    window = [m for m in markets if m.ts[0] >= start_us]
    if not window:
        raise ValueError(
            f"{kind} agent for {day}: no tradable day of {'/'.join(cfg.kr_venues)} in the training window {first}.."
            f"{cutoff.isoformat()} ({'; '.join(notes) or 'no premium rows'}); materialize market data first"
        )
    last_close = max(int(m.ts[-1]) + m.interval_s * US for m in window)
    cutoff_us = int(cutoff.timestamp()) * US
    if last_close > cutoff_us:  # asserted from the data the episodes hold, not from the filter above
        raise AssertionError(f"{kind} agent for {day}: a training bar closes after the cutoff {cutoff}")
    days = sorted({int(m.ts[0]) // (86_400 * US) for m in window})
    n_val = math.ceil(cfg.validation_fraction * len(days)) if len(days) > 1 else 0
    n_val = min(n_val, len(days) - 1)
    val_days = set(days[len(days) - n_val :])
    train_markets = [m for m in window if int(m.ts[0]) // (86_400 * US) not in val_days]
    val_markets = [m for m in window if int(m.ts[0]) // (86_400 * US) in val_days]
    stats = catalog_stats(train_markets, catalog, cfg.env.catalog_features)
    train_eps = build_episodes(
        train_markets, cfg.backtest, cfg.env, catalog=catalog, stats=stats, history=history
    )
    val_eps = build_episodes(
        val_markets, cfg.backtest, cfg.env, catalog=catalog, stats=stats, history=markets
    )
    agent = train(train_eps, cfg.env, acfg, catalog_stats=stats, progress=progress)
    return TrainedDay(
        agent=agent,
        day=day,
        cutoff=cutoff,
        train_episodes=[e.key for e in train_eps],
        validation_episodes=[e.key for e in val_eps],
        last_bar_close=datetime.fromtimestamp(last_close / US, tz=cutoff.tzinfo),
        metrics=evaluate(agent, val_eps),
        notes=notes,
    )


def evaluate(agent: Agent, episodes: list[Episode]) -> dict[str, float]:
    """The agent played deterministically on ``episodes``: total return (summed over episodes, per unit
    of capital), the Sharpe ratio of the concatenated per-bar returns (annualized), fills and
    kill-switch trips. NaN without episodes."""
    if not episodes:
        return {"total_return": float("nan"), "sharpe": float("nan"), "fills": 0.0, "kill_switch": 0.0}
    returns: list[np.ndarray] = []
    total = 0.0
    fills = 0
    kills = 0
    per_year = episodes[0].market.periods_per_year
    for ep in episodes:
        play = agent.play(ep)
        cap = float(ep.params[BK.P_CAP_TOTAL])
        curve = np.concatenate([[cap], play.equity])
        returns.append(np.diff(curve) / curve[:-1])
        total += (play.equity[-1] - cap) / cap
        fills += play.trades.shape[0]
        kills += play.kills.shape[0]
    r = np.concatenate(returns)
    sd = float(r.std(ddof=1)) if r.size > 1 else 0.0
    sharpe = float(r.mean() / sd * math.sqrt(per_year)) if sd > 0 else float("nan")
    return {
        "total_return": float(total),
        "sharpe": sharpe,
        "fills": float(fills),
        "kill_switch": float(kills),
    }


def act_day(
    agent: Agent,
    market: Market,
    *,
    history: Market | None = None,
    catalog: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, Play]:
    """The agent's signals on ``market`` (ts, target: what it sent after the guard rails) and its play.
    ``history``: the bars before the market (the previous day), for the observation's warm-up."""
    if not agent.env_config.use_books:  # it learned without books: it acts without them
        market = market.replace(kr_book=None, bn_book=None)
    episode = Episode.build(
        market, agent.backtest_config, agent.env_config, history=history, catalog=catalog,
        catalog_stats=agent.catalog_stats,
    )  # fmt: skip
    play = agent.play(episode)
    return pl.DataFrame({"ts": market.ts_series(), "target": play.targets}), play
