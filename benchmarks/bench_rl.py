"""RL benchmarks (run on demand; figures go to docs/benchmarks.md).

1. env: ``SpreadTradingEnv.step`` through the gymnasium API, one environment on one core, a synthetic day
   of 1-minute bars with every cost on and L10 books, random actions drawn beforehand (the policy is not
   timed). Target: >= 50,000 steps/s. Also reported: the discrete (DQN) environment, and the numba path
   alone (``play_targets``: a whole episode in one call, what parity is proven on).
2. training: one day's agent (``kimp.rl.walk_forward.train_day``, default ``AgentConfig``) on the real
   hourly samples (Bithumb BTC and ETH, the 30-day window before ``--day``, default 2018-03-01), PPO and
   DQN. Target: each under 2 minutes (the default ``max_train_seconds`` is 110 s). Without the shared
   data beside the repository it falls back to synthetic hourly tables (and says so).
3. ``--minute``: the same on a 30-day window of synthetic 1-minute bars (86,400 bars per coin), with
   ``--minute-steps`` steps (default 200,000) and a 10-minute budget per agent. Long: run it on its own.

Usage: .venv/bin/python benchmarks/bench_rl.py [--steps 200000] [--day 2018-03-01] [--minute]
Its last line reads ``env_steps_per_s=<n> ppo_train_s=<x> dqn_train_s=<y>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_backtest import synth_market  # noqa: E402  (the backtest benchmark's synthetic market)

from kimp.backtest import BacktestConfig  # noqa: E402
from kimp.rl import AgentConfig, EnvConfig, Episode  # noqa: E402
from kimp.rl.env import SpreadTradingEnv, play_targets  # noqa: E402
from kimp.rl.walk_forward import RLWalkForward, train_day  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def env_speed(steps: int) -> dict[str, float]:
    """Steps per second of the gymnasium API (continuous and discrete) and of the numba path."""
    market = synth_market(1440, seed=11)
    episode = Episode.build(market, BacktestConfig(), EnvConfig())
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    for kind in ("continuous", "discrete"):
        env = SpreadTradingEnv([episode], EnvConfig(), action=kind, seed=0)  # type: ignore[arg-type]
        if kind == "continuous":
            actions = list(np.round(rng.uniform(-1, 1, (steps, 1)), 1).astype(np.float32))
        else:
            actions = list(rng.integers(0, env.action_space.n, steps))  # type: ignore[attr-defined]
        env.reset()
        for a in actions[:2000]:  # warm-up (and the JIT, if the cache is cold)
            if env.step(a)[2]:
                env.reset()
        best = 0.0
        for _ in range(3):
            env.reset()
            t0 = time.perf_counter()
            for a in actions:
                if env.step(a)[2]:
                    env.reset()
            best = max(best, steps / (time.perf_counter() - t0))
        out[f"gym_{kind}_steps_per_s"] = best
    targets = np.round(rng.uniform(-1, 1, episode.n), 1)
    play_targets(episode, targets)
    t0 = time.perf_counter()
    runs = max(1, steps // episode.n)
    for _ in range(runs):
        play_targets(episode, targets)
    out["numba_steps_per_s"] = runs * episode.n / (time.perf_counter() - t0)
    return out


def real_hourly_tables(first: date, last: date) -> dict[str, pl.DataFrame]:
    from kimp.market_data.files import FilesSource
    from kimp.premium import compute_premium

    src = FilesSource(REAL)
    premium, candles = [], []
    day = first
    while day <= last:
        c = {v: src.candles(v, day) for v in ("bithumb", "binance")}
        fx = pl.concat([src.fx(day - timedelta(days=k)) for k in range(7, -1, -1)])
        premium.append(compute_premium({"bithumb": c["bithumb"]}, c["binance"], fx, day=day))
        candles.extend(c.values())
        day += timedelta(days=1)
    return {"premium": pl.concat(premium), "candles": pl.concat(candles), "orderbook": pl.DataFrame()}


def synthetic_tables(first: date, days: int, interval_s: int, venue: str) -> dict[str, pl.DataFrame]:
    from kimp.testing import synthetic_inputs

    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    inputs = synthetic_inputs(start, days, interval_s=interval_s, orderbook_every_s=None, kr_venues=(venue,))
    return {"premium": inputs.premium, "candles": inputs.candles, "orderbook": pl.DataFrame()}  # type: ignore[dict-item]


def train_both(
    day: date, tables: dict[str, pl.DataFrame], wf: RLWalkForward, **agent: object
) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind in ("ppo", "dqn"):
        cfg = dataclasses.replace(AgentConfig(kind=kind), **agent)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        trained = train_day(day, kind, tables, wf, cfg)
        total = time.perf_counter() - t0
        r = trained.agent.report
        print(
            f"{kind}: train_day {total:.1f} s (learning {r.seconds:.1f} s, {r.steps} steps, "
            f"{r.steps / r.seconds:,.0f} steps/s, budget_hit={r.budget_hit}, "
            f"{len(trained.train_episodes)} training episodes); validation return "
            f"{trained.metrics['total_return']:+.4%}, load {load()}",
            flush=True,
        )
        out[kind] = total
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200_000, help="environment steps per timing")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2018, 3, 1))
    parser.add_argument("--minute", action="store_true", help="also a 30-day window of 1-minute bars")
    parser.add_argument("--minute-steps", type=int, default=200_000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average (1, 5, 15 min) before: {load()}", flush=True)

    speed = env_speed(args.steps)
    print(
        f"env steps/s, gymnasium API, one env, one core: continuous {speed['gym_continuous_steps_per_s']:,.0f}, "
        f"discrete {speed['gym_discrete_steps_per_s']:,.0f}; numba path alone {speed['numba_steps_per_s']:,.0f}",
        flush=True,
    )

    wf = RLWalkForward(window_days=30, kr_venues=("bithumb",))
    first, last = wf.data_days(args.day)
    if REAL.is_dir():
        tables = real_hourly_tables(first, last)
        print(f"hourly: real samples, Bithumb BTC and ETH, window {first}..{last} (day {args.day})")
    else:
        tables = synthetic_tables(first, (last - first).days + 1, 3600, "bithumb")
        print(f"hourly: SYNTHETIC tables ({REAL} not found), window {first}..{last}")
    hourly = train_both(args.day, tables, wf)

    if args.minute:
        mwf = RLWalkForward(window_days=30, kr_venues=("upbit",))
        mfirst, mlast = mwf.data_days(args.day)
        mtables = synthetic_tables(mfirst, (mlast - mfirst).days + 1, 60, "upbit")
        print(f"minute: synthetic 1-minute tables, window {mfirst}..{mlast}, {args.minute_steps} steps")
        minute = train_both(
            args.day, mtables, mwf, total_timesteps=args.minute_steps, max_train_seconds=600.0
        )
        print(f"minute_ppo_train_s={minute['ppo']:.1f} minute_dqn_train_s={minute['dqn']:.1f}")

    print(f"load average (1, 5, 15 min) after: {load()}")
    print(
        f"env_steps_per_s={speed['gym_continuous_steps_per_s']:.0f} ppo_train_s={hourly['ppo']:.1f} "
        f"dqn_train_s={hourly['dqn']:.1f}"
    )


if __name__ == "__main__":
    main()
