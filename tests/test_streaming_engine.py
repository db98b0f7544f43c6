"""The streaming engine's behaviour around the bar-close vectors: tick refresh on order-book snapshots,
the tick-level rule of the catalog, missing and repeated bars, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from kimp.features import FeatureConfig, catalog
from kimp.features.inputs import base_frame, ensure_columns, prepare
from kimp.market_data.simulated import SimulatedSource
from kimp.premium import compute_premium
from kimp.streaming import BarClose, StreamingEngine
from kimp.streaming.compiler import CompiledFeatures, compile_features
from kimp.streaming.events import Rows
from kimp.streaming.feeds import StoredFeed, stored_history
from kimp.streaming.parity import batch_reference, compare, vectors_frame
from kimp.testing import synthetic_inputs
from tests.test_streaming_parity import Since

CONFIG = FeatureConfig()
TICK = [s.name for s in catalog(CONFIG) if s.refresh == "tick"]


@pytest.fixture(scope="module")
def market() -> Since:
    return Since(SimulatedSource(seed=5, orderbook_interval_ms=10_000), date(2024, 5, 6))


@pytest.mark.slow
def test_tick_refresh_between_closes_and_close_vectors_still_equal_batch(market: Since) -> None:
    start = datetime(2024, 5, 7, 10, 0, tzinfo=UTC)
    engine = StreamingEngine(CONFIG, interval_s=60, tick=True)
    engine.warm_up(stored_history(market, until=start, interval_s=60), until=start)
    closes, ticks = [], []
    latest_mid: dict[tuple[str, str], float] = {}
    fx_rows: list[dict] = []
    checked = 0
    for event in StoredFeed(market, start=start, end=start + timedelta(minutes=4), interval_s=60).events():
        if isinstance(event, Rows) and event.table == "orderbook":
            for r in event.rows.iter_rows(named=True):
                latest_mid[(r["venue"], r["symbol"])] = (r["bid_px_1"] + r["ask_px_1"]) / 2
        if isinstance(event, Rows) and event.table == "fx":
            fx_rows.extend(event.rows.filter(pl.col("series") == "intraday").to_dicts())
        out = engine.on_event(event)
        if isinstance(event, BarClose):
            closes.extend(out)
            continue
        for vec in out:
            assert vec.tick and vec.ts == engine.next_bar and vec.known_at == event.at
            last = engine.last[vec.coin]
            bar_level = ~engine.tick_mask
            np.testing.assert_array_equal(vec.values[bar_level], last.values[bar_level])
            if fx_rows and vec.coin == "BTC":
                usdkrw = fx_rows[-1]["close"]
                expected = (
                    latest_mid[("upbit", "BTC/KRW")] / (latest_mid[("binance", "BTC/USDT")] * usdkrw) - 1
                )
                got = vec.as_dict()["prem_fx"]
                assert got == pytest.approx(expected, rel=1e-6), "tick premium from the latest books"
                checked += 1
            ticks.append(vec)
    assert checked > 10 and len(ticks) >= 2 * 3 * 5  # from the first close on: 6 snapshots a bar, 2 coins
    moved = {n for n in TICK if len({t.as_dict()[n] for t in ticks if t.coin == "BTC"}) > 1}
    assert {"prem_fx", "kr_ret_1m", "kr_ob_spread_bps"} <= moved
    batch = batch_reference(market, [start.date()], CONFIG)
    report = compare(batch, vectors_frame(closes), engine.names)
    assert report.mismatches == 0, str(report)


def test_tick_level_features_read_no_volume_high_or_low() -> None:
    """The catalog's tick rule: a provisional row's unknown volume, high and low cannot move them."""
    start = datetime(2024, 1, 15, tzinfo=UTC)
    inputs = synthetic_inputs(start - timedelta(days=2), 3, orderbook_every_s=60, seed=4)
    end = start + timedelta(days=1)
    prep = prepare(inputs, start=start, end=end, config=CONFIG)
    base = ensure_columns(base_frame(prep, "BTC", end=end, config=CONFIG)[0])
    program = compile_features(CONFIG, 60)
    compiled = CompiledFeatures(program, CONFIG, 60)
    compiled.warm(base.head(base.height - 1))
    row = base.tail(1).row(0, named=True)
    tick = np.array([n in TICK for n in program.names])
    plain = compiled.step(row, commit=False, tick=True)
    assert np.isfinite(plain[tick]).mean() > 0.8  # (3- and 7-day windows are still warming up)
    blind = {c: None for c in row if c[3:] in ("o", "h", "l", "v", "qv") and c[:3] in ("kr_", "bn_")}
    assert len(blind) == 10
    perturbed = compiled.step({**row, **blind}, commit=False, tick=True)
    np.testing.assert_array_equal(perturbed[tick], plain[tick])
    # the same change does move bar-level features (a full provisional evaluation)
    full = compiled.step(row, commit=False)
    full_blind = compiled.step({**row, **blind}, commit=False)
    moved = [
        n
        for n, a, b in zip(program.names, full, full_blind, strict=True)
        if not (a == b or (np.isnan(a) and np.isnan(b)))
    ]
    assert "kr_parkinson_15m" in moved and "kr_vwap_dist_1h" in moved and not set(moved) & set(TICK)


def test_missing_bars_become_rows_and_repeated_or_misaligned_closes_are_handled() -> None:
    engine = StreamingEngine(CONFIG, interval_s=60, tick=False)
    t0 = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    inputs = synthetic_inputs(t0, 1, orderbook_every_s=60, seed=2)
    assert inputs.candles is not None
    # bars 2 and 3 have no candles: the close of bar 4 emits them too (rows of the grid, as in batch)
    expected = {0: [0], 1: [1], 4: [2, 3, 4]}
    for k, bars in expected.items():
        bar = t0 + timedelta(minutes=k)
        engine.on_event(
            Rows("candles", inputs.candles.filter(pl.col("ts") == bar), bar + timedelta(minutes=1))
        )
        out = engine.on_event(BarClose(bar, 60))
        assert [v.ts for v in out if v.coin == "BTC"] == [t0 + timedelta(minutes=m) for m in bars]
    # the premium rows the engine computed for the closed bars: the kimchi_premium asset's (bar 4 only:
    # bars 2 and 3 had no candles)
    bars = [t0 + timedelta(minutes=m) for m in (2, 3, 4)]
    day_candles = inputs.candles.filter(pl.col("ts") == bars[-1])
    kr = {v: day_candles.filter(pl.col("venue") == v) for v in ("upbit", "bithumb")}
    want = compute_premium(
        kr, day_candles.filter(pl.col("venue") == "binance"), pl.DataFrame(), day=t0.date()
    )
    assert engine.bar_premium(bars).equals(want) and want.height == 4
    gap = {v.ts: v for v in out if v.coin == "BTC"}
    assert gap[t0 + timedelta(minutes=2)].as_dict()["prem_usdt"] is None  # no candles: null, never stale
    assert gap[t0 + timedelta(minutes=4)].as_dict()["prem_usdt"] is not None
    assert engine.on_event(BarClose(t0 + timedelta(minutes=4), 60)) == []  # repeated close: nothing new
    with pytest.raises(ValueError, match="not the open of a 60 s bar"):
        engine.on_event(BarClose(t0 + timedelta(seconds=90), 60))
    with pytest.raises(ValueError, match="timezone-aware"):
        engine.close_bar(datetime(2024, 1, 1, 0, 5))


def test_warm_up_refuses_history_at_another_interval() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    hourly = synthetic_inputs(t0, 2, interval_s=3600, orderbook_every_s=None, seed=1)
    engine = StreamingEngine(CONFIG, interval_s=60)
    with pytest.raises(ValueError, match="3600 s, the engine's 60 s"):
        engine.warm_up(hourly, until=t0 + timedelta(days=2))


def test_base_rows_equal_the_batch_base_frame_with_placeholders_gaps_and_bad_values() -> None:
    """kimp.streaming.rows builds each bar's base row from records: every column equals the batch
    base_frame's on inputs with zero-volume bars, missing legs, non-finite values and scored news."""
    from kimp.features.build import lookback_days
    from kimp.features.inputs import base_columns, kr_venues
    from kimp.features.types import FeatureInputs
    from kimp.market_data.schemas import KR_VENUES
    from kimp.premium import compute_premium
    from kimp.streaming.rows import BaseRows, to_us

    day = date(2024, 1, 16)
    d0 = datetime(2024, 1, 16, tzinfo=UTC)
    lo, hi = d0 + timedelta(hours=9), d0 + timedelta(hours=11)
    raw = synthetic_inputs(d0 - timedelta(days=1), 2, orderbook_every_s=20, seed=3)
    assert raw.candles is not None and raw.orderbook is not None and raw.fx is not None
    minute = pl.col("ts").dt.minute()
    candles = raw.candles.with_columns(
        volume=pl.when((pl.col("symbol") == "BTC/KRW") & (minute % 7 == 0)).then(0.0).otherwise("volume"),
        close=pl.when((pl.col("symbol") == "ETH/KRW") & (minute == 13)).then(float("nan")).otherwise("close"),
        quote_volume=pl.when(minute % 5 == 0).then(None).otherwise("quote_volume"),
    ).filter(~((pl.col("symbol") == "ETH/USDT") & (minute % 11 == 0)))
    candles = candles.with_columns(
        volume=pl.when((pl.col("symbol") == "BTC/USDT") & (minute % 9 == 0)).then(0.0).otherwise("volume")
    )
    books = raw.orderbook.filter((pl.col("ts") >= lo - timedelta(minutes=1)) & (pl.col("ts") < hi))
    books = books.with_columns(
        bid_sz_3=pl.when(pl.col("ts").dt.second() == 20).then(float("nan")).otherwise("bid_sz_3"),
        ask_sz_1=pl.when(minute % 4 == 0).then(None).otherwise("ask_sz_1"),
    ).filter(~((pl.col("venue") == "binance") & (minute % 6 == 0)))
    fx = raw.fx.with_columns(
        close=pl.when((pl.col("series") == "intraday") & (minute == 30)).then(float("nan")).otherwise("close")
    )
    premium = []
    for d in (day - timedelta(days=1), day):
        c = candles.filter(pl.col("ts").dt.date() == d)
        kr = {v: c.filter(pl.col("venue") == v) for v in KR_VENUES}
        premium.append(compute_premium(kr, c.filter(pl.col("venue") == "binance"), fx, day=d))
    tables = {
        "candles": candles,
        "orderbook": books,
        "fx": fx,
        "onchain": raw.onchain,
        "macro": raw.macro,
        "news": raw.news,
        "news_sentiment": raw.news_sentiment,
    }
    inputs = FeatureInputs(premium=pl.concat(premium), **tables)  # type: ignore[arg-type]
    prep = prepare(inputs, start=lo, end=hi, config=CONFIG)
    rows = BaseRows(CONFIG, 60, lookback_days(CONFIG))
    for table, frame in tables.items():
        rows.add(table, frame.filter(pl.col("ts") < hi))  # type: ignore[union-attr]
    columns = ["ts", "_close", "_hist_s", *base_columns(), "fx_pub", "fx_fix_pub"]
    checked = 0
    for coin in CONFIG.coins:
        assert prep.tables["premium"] is not None
        venues = kr_venues(prep.tables["premium"], coin, CONFIG)
        batch = ensure_columns(base_frame(prep, coin, end=hi, config=CONFIG, venues=venues)[0])
        origin = to_us(batch["ts"][0])
        for want in batch.filter(pl.col("ts") >= lo).iter_rows(named=True):
            bar = to_us(want["ts"])
            candles_now = rows.bars["candles"].get(bar, [])
            got = rows.row(bar, coin, venues, rows.premium(bar, candles_now), candles_now, origin)
            for name in columns:
                a, b = want[name], got.get(name)
                same = a == b or (
                    isinstance(a, float)
                    and isinstance(b, float)
                    and ((np.isnan(a) and np.isnan(b)) or np.isclose(a, b, rtol=1e-12, atol=0))
                )
                assert same, f"{coin} {want['ts']} {name}: batch {a!r}, streaming {b!r}"
                checked += a is not None
    assert checked > 2 * 120 * 100


def test_bar_premium_keeps_premium_history_warm_up_bars_included() -> None:
    """With ``premium_history`` the engine keeps the premium rows that far back (the live loop's last_move
    reads the bar one horizon before): warm-up bars as prepare() left them, then the closes' own."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    inputs = synthetic_inputs(t0, 1, orderbook_every_s=None, seed=2)
    until, hour = t0 + timedelta(hours=2), timedelta(hours=1)
    engine = StreamingEngine(CONFIG, interval_s=60, tick=False, premium_history=hour)
    engine.warm_up(inputs, until=until)
    premium = prepare(inputs, start=until - timedelta(minutes=1), end=until, config=CONFIG).tables["premium"]
    assert premium is not None
    bars = [until - hour - timedelta(minutes=1), until - hour, until - timedelta(minutes=1)]
    want = premium.filter(pl.col("ts").is_in(bars[1:])).sort("coin", "kr_venue", "ts")
    assert want.height == 8 and engine.bar_premium(bars).equals(want)  # the bar before the hour: gone
    engine.on_event(
        Rows("candles", inputs.candles.filter(pl.col("ts") == until), until + timedelta(minutes=1))
    )
    engine.on_event(BarClose(until, 60))
    # at the close of bar ``until`` the bar one hour back is still kept, the one before it long gone
    assert engine.bar_premium([*bars, until])["ts"].unique().sort().to_list() == [*bars[1:], until]
