"""Engine parity on a simulated day, order-book fills, daily close-out and bad input."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import polars as pl
import pytest

from kimp.backtest import (
    SCENARIOS,
    BacktestConfig,
    Book,
    CostConfig,
    TransferModel,
    apply_scenario,
    html_report,
    market_from_arrays,
    market_from_tables,
    prediction_signals,
    run_event_driven,
    run_vectorized,
    sweep,
    zscore_signals,
)
from kimp.backtest.event_driven import walk_book
from kimp.errors import MarketDataError
from kimp.market_data.source import build_source
from kimp.premium import compute_premium

DAY = date(2024, 3, 1)
US = 1_000_000


@pytest.fixture(scope="module")
def tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    src = build_source("simulated")
    candles = {v: src.candles(v, DAY) for v in ("upbit", "bithumb", "binance")}
    premium = compute_premium(
        {"upbit": candles["upbit"], "bithumb": candles["bithumb"]}, candles["binance"], src.fx(DAY), day=DAY
    )
    return premium, pl.concat(list(candles.values())), src.orderbook(DAY)


@pytest.fixture(scope="module")
def market(tables):
    return market_from_tables(*tables, coin="BTC", kr_venue="upbit")


def test_engines_agree_under_bar_fills_with_every_cost(market) -> None:
    # Perp hedge (funding), small inventory (transfers and rejections), all default costs.
    cfg = BacktestConfig(
        hedge="perp",
        inventory_fraction=0.4,
        costs=dataclasses.replace(CostConfig(), transfer=TransferModel(delay_s=600)),
    )
    sig = zscore_signals(market, window=60, entry_z=1.5, exit_z=0.3)
    vec = run_vectorized(market, sig, cfg)
    ev = run_event_driven(market, sig, cfg)
    assert vec.trades.height > 20 and vec.transfers.height > 0 and vec.rejections
    assert vec.costs["funding"] != 0
    # Documented tolerance: 1e-9 relative on equity; trades identical.
    assert ev.trades.select("ts", "venue", "side").equals(vec.trades.select("ts", "venue", "side"))
    np.testing.assert_allclose(ev.trades["qty"].to_numpy(), vec.trades["qty"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ev.trades["price"].to_numpy(), vec.trades["price"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ev.equity["equity"].to_numpy(), vec.equity["equity"].to_numpy(), rtol=1e-9)
    assert ev.rejections == vec.rejections
    assert ev.costs == pytest.approx(vec.costs, rel=1e-9)
    # Metrics: the same functions on equal curves; documented tolerance 1e-9 relative.
    assert ev.metrics.keys() >= {"sharpe", "volatility", "sortino", "max_drawdown"}
    for key in ("total_return", "volatility", "sharpe", "sortino", "max_drawdown", "exposure", "round_trips"):
        assert ev.metrics[key] == pytest.approx(vec.metrics[key], rel=1e-9), key


def _random_market(seed: int, days: int = 3):
    """Volatile 1-minute bars over a few UTC days, with a 37-minute hole in time and untradable bars."""
    rng = np.random.default_rng(seed)
    n = days * 1440 + 77
    ts = 1_709_251_200_000_000 + np.arange(n, dtype=np.int64) * 60 * US
    bn = 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.003, n)))
    conv = 1350.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0005, n)))
    kr = bn * conv * (1.03 + 0.01 * rng.standard_normal(n))
    m = market_from_arrays(
        ts, kr, bn, conv, kr_volume=rng.gamma(2.0, 3.0, n), bn_volume=rng.gamma(2.0, 30.0, n)
    )
    gappy = ts.copy()
    gappy[1500:] += 37 * 60 * US  # irregular time: the day ends and funding instants move off the grid
    tradable = rng.random(n) > 0.05
    return m.replace(ts=gappy, fx_ts=gappy + 60 * US, tradable=tradable), rng


@pytest.mark.parametrize("mode", ["spread", "kr_only", "binance_only"])
@pytest.mark.parametrize("hedge", ["spot", "perp"])
def test_sparse_decision_pass_matches_the_per_bar_engine(mode: str, hedge: str) -> None:
    # The vectorized engine skips quiet bars in blocks and stops at funding instants, transfer arrivals
    # and day ends found by search; the event-driven engine looks at every bar. Under bar fills they
    # must book the same fills and marks: random piecewise-constant targets (holds that drift out of the
    # rebalance band, flips, zeros), small inventory (transfers), all costs.
    m, rng = _random_market(7 + len(mode) + len(hedge))
    levels = rng.choice([-1.0, -0.5, 0.0, 0.0, 0.3, 1.0], m.n // 20 + 1)
    target = np.repeat(levels, rng.geometric(1 / 40, levels.size))[: m.n]
    target = np.concatenate([target, np.zeros(m.n - target.size)])
    sig = pl.DataFrame({"ts": m.ts_series(), "target": target})
    cfg = BacktestConfig(
        mode=mode,
        hedge=hedge,
        inventory_fraction=0.3,
        rebalance_threshold=0.01,
        costs=dataclasses.replace(CostConfig(), transfer=TransferModel(delay_s=900)),
    )
    vec = run_vectorized(m, sig, cfg)
    ev = run_event_driven(m, sig, cfg)
    assert vec.trades.height > 100
    assert ev.trades.select("ts", "venue", "side").equals(vec.trades.select("ts", "venue", "side"))
    np.testing.assert_allclose(ev.trades["qty"].to_numpy(), vec.trades["qty"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ev.trades["price"].to_numpy(), vec.trades["price"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ev.equity["equity"].to_numpy(), vec.equity["equity"].to_numpy(), rtol=1e-9)
    for col in ("position", "kr_qty", "bn_qty"):
        np.testing.assert_allclose(ev.equity[col].to_numpy(), vec.equity[col].to_numpy(), rtol=1e-12)
    assert ev.rejections == vec.rejections and ev.transfers.equals(vec.transfers)
    assert ev.costs == pytest.approx(vec.costs, rel=1e-9)
    if hedge == "perp" and mode != "kr_only":
        assert vec.costs["funding"] != 0


def test_frames_are_built_on_first_access_and_survive_later_runs(market) -> None:
    # The vectorized engine reuses its record buffers from run to run; a result keeps copies, so its
    # frames, built lazily, are its own even after other runs.
    cfg = BacktestConfig(hedge="perp", inventory_fraction=0.4)
    first = run_vectorized(market, zscore_signals(market, window=60, entry_z=1.5, exit_z=0.3), cfg)
    again = run_vectorized(market, zscore_signals(market, window=60, entry_z=1.5, exit_z=0.3), cfg)
    other = run_vectorized(market, zscore_signals(market, window=20, entry_z=1.0, exit_z=0.1), cfg)
    assert "trades" not in first.__dict__  # not built yet
    assert other.trades.height != again.trades.height
    assert first.trades.equals(again.trades) and first.equity.equals(again.equity)
    assert first.transfers.equals(again.transfers) and first.rejections == again.rejections
    assert first.trades.height == first.metrics["fills"]


def test_every_day_ends_flat(market) -> None:
    sig = zscore_signals(market, window=30, entry_z=1.0, exit_z=0.2).with_columns(target=pl.lit(-1.0))
    for run in (run_vectorized, run_event_driven):
        r = run(market, sig, BacktestConfig())
        assert r.equity["kr_qty"][-1] == 0 and r.equity["bn_qty"][-1] == 0
        assert r.metrics["exposure"] > 0.99


def test_walk_book_partial_fill_and_limit() -> None:
    px = np.array([[100.0, 101.0, 102.0, np.nan]])
    sz = np.array([[1.0, 2.0, 3.0, np.nan]])
    assert walk_book(1.0, 2.5, np.nan, px, sz, 0) == pytest.approx((2.5, 100 + 1.5 * 101))
    assert walk_book(1.0, 10.0, np.nan, px, sz, 0) == pytest.approx((6.0, 100 + 202 + 306))  # L3 then nothing
    assert walk_book(1.0, 10.0, 101.0, px, sz, 0) == pytest.approx((3.0, 302.0))  # stops at the limit


def _book_market(order_type: str, latency_ms: int, offset_bps: float = 0.0):
    """3 one-minute bars; books every 10 s; asks 100.5/101.5 x 4 coins, bids 99.5/98.5 x 4 coins."""
    ts = np.arange(3, dtype=np.int64) * 60 * US + 1_709_251_200 * US
    bts = ts[0] + np.arange(0, 190, 10, dtype=np.int64) * US
    m = len(bts)
    lvl = np.arange(10)
    ask_px = np.tile(100.5 + lvl, (m, 1))
    bid_px = np.tile(99.5 - lvl, (m, 1))
    sz = np.full((m, 10), 4.0)
    ask_px[9:, :] -= 0.6  # from 90 s on the asks fall below 100 (a resting bid at 100 gets hit)
    book = Book(bts, bid_px, sz, ask_px, sz.copy())
    mk = market_from_arrays(
        ts, np.full(3, 100.0), np.full(3, 1.0), np.full(3, 1000.0), kr_book=book, bn_book=book
    )
    cfg = BacktestConfig(
        mode="kr_only",
        capital_krw=1000.0,
        capital_usdt=1.0,
        fill="book",
        order_type=order_type,  # type: ignore[arg-type]
        latency_ms=latency_ms,
        limit_offset_bps=offset_bps,
        costs=CostConfig.free(),
    )
    sig = pl.DataFrame({"ts": mk.ts_series(), "target": [1.0, 1.0, 0.0]})
    return mk, cfg, sig


def test_market_order_waits_for_latency_and_walks_the_book() -> None:
    mk, cfg, sig = _book_market("market", latency_ms=25_000)
    r = run_event_driven(mk, sig, cfg)
    first = r.trades.row(0, named=True)
    # Decided at 60 s, active at 85 s: the 90 s snapshot (asks from 99.9); 10 coins = 4 + 4 + 2.
    assert first["ts"].timestamp() - mk.ts[0] / US == 90
    assert first["qty"] == pytest.approx(10.0)
    assert first["price"] == pytest.approx((4 * 99.9 + 4 * 100.9 + 2 * 101.9) / 10)
    assert first["liquidity"] == "taker"


def test_ioc_cancels_what_it_cannot_fill_and_limit_rests_as_maker() -> None:
    mk, cfg, sig = _book_market("ioc", latency_ms=0, offset_bps=0.0)
    r = run_event_driven(mk, sig, cfg)
    # Buy IOC at the mid 100: no ask at or below 100 at 60 s -> nothing, cancelled.
    assert r.metrics["unfilled_qty"] >= 10.0
    mk, cfg, sig = _book_market("limit", latency_ms=0, offset_bps=0.0)
    r = run_event_driven(mk, sig, cfg)
    buys = r.trades.filter(pl.col("side") == "buy")
    # Meets the 70 s book without crossing, rests at 100; at 90 s the asks (99.9) cross it: filled at the limit, as maker, 4 coins shown.
    assert buys["liquidity"].to_list()[0] == "maker"
    assert buys["price"].to_list()[0] == pytest.approx(100.0)
    assert buys["qty"].to_list()[0] == pytest.approx(4.0)


def test_no_books_fall_back_to_bar_fills(market) -> None:
    bare = market.replace(kr_book=None, bn_book=None)
    sig = zscore_signals(bare, window=60)
    r = run_event_driven(bare, sig, BacktestConfig(fill="book"))
    assert any("bar-level fills" in note for note in r.notes)
    assert r.trades.equals(run_vectorized(bare, sig, BacktestConfig()).trades)


def test_bad_input_gets_clear_errors(tables, market) -> None:
    premium, candles, books = tables
    sig = zscore_signals(market, window=60)
    with pytest.raises(MarketDataError, match="misaligned"):
        run_vectorized(market, sig.slice(1), BacktestConfig())
    with pytest.raises(MarketDataError, match="NaN or null"):
        run_vectorized(market, sig.with_columns(target=pl.lit(None, pl.Float64)), BacktestConfig())
    btc = premium.filter((pl.col("coin") == "BTC") & (pl.col("kr_venue") == "upbit"))
    nan_price = btc.with_columns(
        kr_close=pl.when(pl.int_range(pl.len()) == 5).then(float("nan")).otherwise(pl.col("kr_close"))
    )
    with pytest.raises(MarketDataError, match="NaN or non-positive price"):
        market_from_tables(nan_price, candles, books)
    with pytest.raises(MarketDataError, match="not strictly increasing"):
        market_from_tables(btc.reverse(), candles, books)
    gappy = btc.filter((pl.int_range(pl.len()) < 100) | (pl.int_range(pl.len()) > 110))
    with pytest.raises(MarketDataError, match="max_gap_bars=5"):
        market_from_tables(gappy, candles, books)
    short_gap = btc.filter((pl.int_range(pl.len()) < 100) | (pl.int_range(pl.len()) > 103))
    filled = market_from_tables(short_gap, candles, books)
    assert filled.n == 1440 and not filled.tradable[100:104].any()
    assert filled.kr_close[101] == filled.kr_close[99]  # forward-filled, never traded


def test_prediction_rule_and_misaligned_predictions(market) -> None:
    ts = market.ts_series()
    preds = pl.DataFrame(
        {
            "ts": ts[:4],
            "coin": "BTC",
            "horizon": 60,
            "model": "ensemble",
            "p_down": [0.7, 0.2, 0.45, None],
            "p_flat": [0.2, 0.2, 0.2, None],
            "p_up": [0.1, 0.6, 0.35, None],
        }
    )
    # Every bar on its own edge (no hysteresis, no holding, unrounded sizes).
    sig = prediction_signals(
        market, preds, model="ensemble", threshold=0.15, exit_threshold=0.15, hold_minutes=0, size_step=0
    )
    assert sig["target"][:5].to_list() == pytest.approx([-0.6, 0.4, 0.0, 0.0, 0.0])
    # The default holds for the horizon (60 one-minute bars), leaves below half the entry edge, and sizes
    # in steps of 0.25: bar 0 enters short 0.5, then nothing moves it until bar 60, where the edge is 0.
    held = prediction_signals(market, preds, model="ensemble", threshold=0.15)["target"].to_numpy()
    assert held[:60].tolist() == [-0.5] * 60 and held[60] == 0
    off = preds.with_columns(pl.col("ts") + pl.duration(seconds=30))
    with pytest.raises(MarketDataError, match="off the bar grid"):
        prediction_signals(market, off, model="ensemble")


def test_prediction_rule_hysteresis_holding_and_size_steps() -> None:
    from kimp.backtest.signals import prediction_targets

    edge = np.array([0.05, 0.3, 0.12, 0.06, 0.04, -0.2, -0.5, -0.45, 0.0, 0.9])
    # entry 0.1, exit 0.05, hold 2 bars, steps of 0.25. Bar 1 enters short 0.25 (0.3 rounds to 0.25);
    # bar 2 (held 1) must hold; bar 3 (0.06 >= exit) keeps a rounded size of one step; bar 4 is below
    # exit: flat. Bar 5 enters long 0.25; bar 6 is still held (0.5 would be 0.5); bar 7 resizes to 0.5;
    # bar 8 (edge 0) leaves; bar 9 enters short at the cap 1.0.
    out = prediction_targets(edge, 0.1, 0.05, 2, 0.25)
    assert out.tolist() == [0.0, -0.25, -0.25, -0.25, 0.0, 0.25, 0.25, 0.5, 0.0, -1.0]
    # An opposite edge flips after the holding period when strong enough, else only leaves.
    assert prediction_targets(np.array([0.3, -0.3, -0.3]), 0.1, 0.05, 1, 0).tolist() == [-0.3, 0.3, 0.3]
    assert prediction_targets(np.array([0.3, -0.07, 0.3]), 0.1, 0.05, 1, 0).tolist() == [-0.3, 0.0, -0.3]


def test_scenarios_are_seeded_consistent_and_stressful(market) -> None:
    sig_cfg = {"window": 120, "entry_z": 2.0, "exit_z": 0.5}
    results = {}
    for name in SCENARIOS:
        a, b = apply_scenario(market, name, seed=3), apply_scenario(market, name, seed=3)
        np.testing.assert_array_equal(a.kr_close, b.kr_close)
        ok = np.isfinite(a.premium)
        np.testing.assert_allclose(a.premium[ok], (a.kr_close / (a.bn_close * a.conv) - 1)[ok], rtol=1e-9)
        results[name] = run_vectorized(a, zscore_signals(a, **sig_cfg), BacktestConfig())
        assert results[name].scenario == name
    vol = {n: np.std(np.diff(np.log(apply_scenario(market, n).bn_close))) for n in SCENARIOS}
    assert vol["high_volatility"] > 2.5 * vol["normal"]
    crash = apply_scenario(market, "flash_crash", seed=3)
    assert crash.bn_close.min() / market.bn_close.min() < 0.9
    assert np.nanmin(crash.premium) < np.nanmin(market.premium) - 0.05
    assert not np.array_equal(crash.bn_close, apply_scenario(market, "flash_crash", seed=4).bn_close)
    low = apply_scenario(market, "low_liquidity")
    np.testing.assert_allclose(low.kr_volume, 0.1 * market.kr_volume)
    assert low.kr_book is not None and market.kr_book is not None
    assert np.all(
        low.kr_book.ask_px[:, 0] - low.kr_book.bid_px[:, 0]
        > market.kr_book.ask_px[:, 0] - market.kr_book.bid_px[:, 0]
    )
    same = run_vectorized(low, zscore_signals(market, **sig_cfg), BacktestConfig())
    base = run_vectorized(market, zscore_signals(market, **sig_cfg), BacktestConfig())
    assert same.costs["slippage"] > base.costs["slippage"]
    page = html_report(list(results.values()))
    assert (
        page.count("data:image/png;base64,") == 1 + 2 * len(SCENARIOS) and "flash_crash" in page
    )  # + small multiples


def test_sweep_runs_each_point_like_a_single_run(market) -> None:
    grid = {"window": [60, 120], "entry_z": [1.5, 2.0]}
    table = sweep(market, grid, BacktestConfig(), n_jobs=2)
    assert table.height == 4
    single = run_vectorized(market, zscore_signals(market, window=120, entry_z=1.5), BacktestConfig())
    row = table.filter((pl.col("window") == 120) & (pl.col("entry_z") == 1.5))
    assert row["total_return"][0] == pytest.approx(single.metrics["total_return"])


def test_fused_pass_metrics_equal_the_separate_metric_passes(market) -> None:
    # The vectorized engine accumulates the metric statistics and round trips while it marks the equity;
    # they must be exactly what compute_metrics computes from the finished curve.
    from kimp.backtest import compute_metrics

    cfg = BacktestConfig(hedge="perp", inventory_fraction=0.4)
    for mode in ("spread", "binance_only"):
        cfg = dataclasses.replace(cfg, mode=mode)
        r = run_vectorized(market, zscore_signals(market, window=60, entry_z=1.5, exit_z=0.3), cfg)
        separate = compute_metrics(
            r.equity["equity"].to_numpy(),
            periods_per_year=market.periods_per_year,
            capital=cfg.capital_krw + cfg.capital_usdt * float(market.conv[0]),
            position=r.equity["position"].to_numpy(),
            costs=r.costs,
        )
        assert r.metrics["round_trips"] > 3
        for key in (
            "total_return",
            "volatility",
            "sharpe",
            "sortino",
            "max_drawdown",
            "win_rate",
            "round_trips",
        ):
            assert r.metrics[key] == separate[key], key


def test_trade_buffer_overflow_reruns_the_pass(market, monkeypatch) -> None:
    from kimp.backtest import vectorized

    sig = zscore_signals(market, window=30, entry_z=1.0, exit_z=0.2)
    full = run_vectorized(market, sig, BacktestConfig())
    monkeypatch.setattr(vectorized, "FIRST_TRADE_CAPACITY", 3)
    small = run_vectorized(market, sig, BacktestConfig())
    assert full.trades.height > 3 and small.trades.equals(full.trades)
    assert small.equity.equals(full.equity) and small.metrics == full.metrics
