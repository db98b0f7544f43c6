"""The RL environment: gymnasium's API, parity with the vectorized backtest, the reward's formula, the kill
switch and the observation's honesty (only data known at the bar's close)."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from gymnasium.utils.env_checker import check_env

from kimp.backtest import BacktestConfig, CostConfig, TransferModel, market_from_arrays, run_vectorized
from kimp.backtest.kernel import P_CAP_TOTAL, S_NOTIONAL
from kimp.rl import EnvConfig, Episode, KillSwitch, feature_names
from kimp.rl.env import SpreadTradingEnv, play_targets
from kimp.rl.observation import static_features
from tests.test_backtest_engines import _random_market

US = 1_000_000
NO_KILL = EnvConfig(kill_switch=KillSwitch(None, None))


def volatile_market(seed: int, days: int = 2):
    """Volatile 1-minute bars over a few UTC days (77 bars into the next), a hole in time, untradable bars:
    the engines' own parity market."""
    return _random_market(seed, days)


def piecewise_targets(rng: np.random.Generator, n: int) -> np.ndarray:
    levels = rng.choice([-1.0, -0.5, 0.0, 0.0, 0.3, 1.0], n // 20 + 1)
    target = np.repeat(levels, rng.geometric(1 / 40, levels.size))[:n]
    return np.concatenate([target, np.zeros(n - target.size)])


def assert_same_backtest(a, b) -> None:
    """Bit for bit: fills, transfers, rejections, costs, equity and every metric."""
    assert a.trades.equals(b.trades)
    assert a.transfers.equals(b.transfers)
    assert a.rejections == b.rejections
    assert a.costs == b.costs
    np.testing.assert_array_equal(a.equity["equity"].to_numpy(), b.equity["equity"].to_numpy())
    np.testing.assert_array_equal(a.equity["kr_qty"].to_numpy(), b.equity["kr_qty"].to_numpy())
    np.testing.assert_array_equal(a.equity["bn_qty"].to_numpy(), b.equity["bn_qty"].to_numpy())
    assert a.metrics.keys() == b.metrics.keys()
    for k, v in a.metrics.items():
        assert v == b.metrics[k] or (v != v and b.metrics[k] != b.metrics[k]), k


@pytest.mark.parametrize("mode", ["spread", "kr_only", "binance_only"])
@pytest.mark.parametrize("hedge", ["spot", "perp"])
def test_fixed_targets_reproduce_run_vectorized_exactly(mode: str, hedge: str) -> None:
    # Every cost on, a small inventory (cuts, rejections, transfers), funding, day-end close-outs inside
    # the episode, a hole in time and untradable bars: the episode books what run_vectorized books.
    m, rng = volatile_market(11 + len(mode) + len(hedge))
    target = piecewise_targets(rng, m.n)
    cfg = BacktestConfig(
        mode=mode,
        hedge=hedge,
        inventory_fraction=0.3,
        rebalance_threshold=0.01,
        costs=dataclasses.replace(CostConfig(), transfer=TransferModel(delay_s=900)),
    )
    episode = Episode.build(m, cfg, NO_KILL)
    play = play_targets(episode, target, NO_KILL)
    vec = run_vectorized(m, pl.DataFrame({"ts": m.ts_series(), "target": target}), cfg)
    assert vec.trades.height > 50 and vec.rejections
    if mode == "spread" and hedge == "spot":
        assert vec.transfers.height > 0
    if hedge == "perp" and mode != "kr_only":
        assert vec.costs["funding"] != 0
    np.testing.assert_array_equal(play.targets[~m.day_end], target[~m.day_end])  # nothing else changed
    assert_same_backtest(episode.result(play), vec)


def test_gym_steps_are_the_numba_path_and_rewards_add_up() -> None:
    m, rng = volatile_market(3, days=1)
    target = piecewise_targets(rng, m.n).astype(np.float32).astype(np.float64)  # actions are float32
    cfg = BacktestConfig(inventory_fraction=0.3)
    env_cfg = dataclasses.replace(NO_KILL, dsr_weight=0.0, turnover_penalty=0.0)
    episode = Episode.build(m, cfg, env_cfg)
    env = SpreadTradingEnv([episode], env_cfg, seed=1)
    obs, info = env.reset(options={"episode": 0})
    assert obs.shape == (len(feature_names(env_cfg)),) and info["market"].startswith("BTC/upbit")
    rewards = []
    done = False
    i = 0
    while not done:
        obs, reward, done, truncated, info = env.step(np.array([target[i]], dtype=np.float32))
        assert not truncated
        rewards.append(reward)
        i += 1
    assert i == m.n and info["fills"] > 0
    gym_play = env.play()
    numba_play = play_targets(episode, target, env_cfg)
    np.testing.assert_array_equal(gym_play.equity, numba_play.equity)
    np.testing.assert_array_equal(gym_play.trades, numba_play.trades)
    # Without the Sharpe term and the penalty, the rewards add up to the PnL in basis points of capital.
    cap = episode.params[P_CAP_TOTAL]
    assert sum(rewards) == pytest.approx(1e4 * (gym_play.equity[-1] - cap) / cap, rel=1e-9)
    assert info["pnl"] == pytest.approx(gym_play.equity[-1] - cap)
    # The turnover penalty subtracts exactly penalty x scale x traded notional / capital.
    penalized = dataclasses.replace(env_cfg, turnover_penalty=0.001)
    p = play_targets(episode, target, penalized)
    notional = p.state[S_NOTIONAL]
    assert p.total_reward == pytest.approx(numba_play.total_reward - 0.001 * 1e4 * notional / cap, rel=1e-9)


def test_gymnasium_check_env_continuous_and_discrete() -> None:
    m, _ = volatile_market(5, days=1)
    episode = Episode.build(m, BacktestConfig(), EnvConfig())
    for action in ("continuous", "discrete"):
        env = SpreadTradingEnv([episode, episode], EnvConfig(), action=action, seed=0)
        check_env(env, skip_render_check=True)
        assert env.observation_space.contains(env.reset(seed=3)[0])


def test_discrete_actions_hold_buy_and_sell_in_quarter_steps() -> None:
    m, _ = volatile_market(6, days=1)
    env_cfg = dataclasses.replace(NO_KILL, discrete_step=0.25)
    episode = Episode.build(m, BacktestConfig(), env_cfg)
    env = SpreadTradingEnv([episode], env_cfg, action="discrete", seed=0)
    assert env.action_space.n == 9  # hold, buy 25/50/75/100%, sell 25/50/75/100%
    env.reset(options={"episode": 0})
    names = feature_names(env_cfg)
    seen = []
    for action in (2, 0, 4, 1, 8, 0, 6, 5):
        obs, *_ = env.step(action)
        seen.append(float(obs[names.index("target")]))
    assert seen == [0.5, 0.5, 1.0, 1.0, 0.0, 0.0, -0.5, -0.75]


def crashing_market():
    """Two UTC days: the Korean leg falls 6% over an hour in the morning of day one, then drifts."""
    n = 2 * 1440
    ts = 1_709_251_200_000_000 + np.arange(n, dtype=np.int64) * 60 * US
    bn = np.full(n, 50_000.0)
    conv = np.full(n, 1350.0)
    premium = np.full(n, 0.03)
    premium[600:660] = np.linspace(0.03, -0.03, 60)
    premium[660:1440] = -0.03
    premium[1440:] = np.linspace(-0.03, 0.0, 1440)
    kr = bn * conv * (1 + premium)
    return market_from_arrays(ts, kr, bn, conv)


def test_kill_switch_flattens_reports_and_keeps_parity() -> None:
    m = crashing_market()
    cfg = BacktestConfig(costs=CostConfig.free())
    env_cfg = EnvConfig(kill_switch=KillSwitch(max_daily_loss=0.02, max_drawdown=None))
    episode = Episode.build(m, cfg, env_cfg)
    target = np.ones(m.n)  # long the premium all along: the crash hits it
    play = play_targets(episode, target, env_cfg)
    assert play.kills.shape == (1, 3)
    bar, reason, equity = play.kills[0]
    cap = episode.params[P_CAP_TOTAL]
    assert 600 < bar < 660 and reason == 1 and equity < cap * 0.98
    assert (play.targets[int(bar) : 1440] == 0).all()  # flat from the trip to the end of that day
    assert (play.targets[1440:-1] == 1).all()  # the daily limit lifts the next day
    result = episode.result(play)
    assert any("max daily loss" in note for note in result.notes)
    # The flattening is an ordinary decision: run_vectorized on the targets sent gives the same book.
    vec = run_vectorized(m, pl.DataFrame({"ts": m.ts_series(), "target": play.targets}), cfg)
    assert_same_backtest(result, vec)
    # A drawdown limit keeps the position flat for the rest of the episode.
    dd = EnvConfig(kill_switch=KillSwitch(max_daily_loss=None, max_drawdown=0.02))
    play = play_targets(Episode.build(m, cfg, dd), target, dd)
    assert play.kills.shape == (1, 3) and play.kills[0, 1] == 2
    assert (play.targets[int(play.kills[0, 0]) :] == 0).all()
    # Through the environment the agent sees the halt.
    env = SpreadTradingEnv([Episode.build(m, cfg, dd)], dd, seed=0)
    env.reset(options={"episode": 0})
    halted = [
        env.step(np.ones(1, dtype=np.float32))[0][feature_names(dd).index("halted")] for _ in range(700)
    ]
    assert halted[0] == 0 and halted[-1] == 1


def test_observations_use_only_data_known_at_the_bar_close() -> None:
    m, rng = volatile_market(9, days=1)
    history, _ = volatile_market(10, days=1)
    history = history.replace(ts=m.ts[0] - np.arange(history.n, 0, -1) * 60 * US)
    cfg = EnvConfig()
    feats = static_features(m, history, cfg)
    assert feats.shape == (m.n, len(feature_names(cfg)) - 4) and np.isfinite(feats).all()
    cut = 1000
    future = m.replace(
        premium=np.concatenate([m.premium[:cut], m.premium[cut:] + rng.normal(0, 0.01, m.n - cut)]),
        kr_volume=np.concatenate([m.kr_volume[:cut], m.kr_volume[cut:] * 7]),
        bn_volume=np.concatenate([m.bn_volume[:cut], m.bn_volume[cut:] * 0.1]),
    )
    changed = static_features(future, history, cfg)
    np.testing.assert_array_equal(changed[:cut], feats[:cut])
    assert not np.array_equal(changed[cut:], feats[cut:])
    # The warm-up history matters only through the past: a different history changes early rows.
    other = static_features(m, None, cfg)
    assert not np.array_equal(other[:60], feats[:60])


def test_bad_input_is_refused_with_a_clear_error() -> None:
    m, _ = volatile_market(12, days=1)
    episode = Episode.build(m, BacktestConfig(), EnvConfig())
    with pytest.raises(ValueError, match="one target per bar"):
        play_targets(episode, np.zeros(5))
    with pytest.raises(ValueError, match="earlier bars"):
        static_features(m, m, EnvConfig())
    with pytest.raises(ValueError, match="catalog features"):
        Episode.build(m, BacktestConfig(), EnvConfig(catalog_features=("kr_rsi_14",)))
    with pytest.raises(ValueError, match="discrete_step"):
        EnvConfig(discrete_step=0.3)
    with pytest.raises(ValueError, match="kill switch"):
        KillSwitch(max_daily_loss=1.5)
    env = SpreadTradingEnv([episode], EnvConfig())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1))


def test_book_imbalance_and_fees_in_the_observation() -> None:
    from kimp.backtest import Book

    m, _ = volatile_market(13, days=1)
    close = m.ts + 60 * US
    ones = np.ones((m.n, 10))
    book = Book(
        ts=close - 1, bid_px=ones, bid_sz=3 * ones, ask_px=2 * ones, ask_sz=ones
    )  # just before the close
    late = Book(ts=close + 1, bid_px=ones, bid_sz=3 * ones, ask_px=2 * ones, ask_sz=ones)  # just after it
    names = feature_names(EnvConfig())
    kr, bn, fee = (names.index(c) for c in ("kr_book_imbalance", "bn_book_imbalance", "round_trip_cost"))
    upbit = Episode.build(m.replace(kr_book=book, bn_book=late), BacktestConfig(), EnvConfig()).feats
    assert (upbit[:, kr] == 0.5).all()  # (3 - 1) / (3 + 1), known at the close
    assert upbit[0, bn] == 0 and (upbit[1:, bn] == 0.5).all()  # a snapshot after the close is the next bar's
    assert upbit[0, fee] == pytest.approx(2 * (0.05 + 0.10))  # percent: Upbit and Binance taker, in and out
    bithumb = Episode.build(m.replace(kr_venue="bithumb"), BacktestConfig(), EnvConfig()).feats
    assert bithumb[0, fee] == pytest.approx(2 * (0.25 + 0.10))
    blind = EnvConfig(use_books=False)
    assert (Episode.build(m.replace(kr_book=book), BacktestConfig(), blind).feats[:, kr] == 0).all()
