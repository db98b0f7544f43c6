"""SimulatedSource: determinism, day independence, continuity, schemas, and market realism."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from kimp.market_data import schemas
from kimp.market_data.simulated import SimParams, SimulatedSource
from kimp.market_data.simulated.news import NEGATIVE_WORDS, POSITIVE_WORDS, headline_tone
from kimp.market_data.simulated.source import clear_caches
from kimp.market_data.source import MarketSource, build_source

DAY = date(2024, 3, 13)  # a Wednesday
SYMBOLS = {
    "upbit": ["BTC/KRW", "ETH/KRW", "USDT/KRW"],
    "bithumb": ["BTC/KRW", "ETH/KRW"],
    "binance": ["BTC/USDT", "ETH/USDT"],
}


@pytest.fixture(scope="module")
def src() -> SimulatedSource:
    return SimulatedSource(seed=7)


@pytest.fixture(scope="module")
def anchors(src: SimulatedSource) -> pl.DataFrame:
    return src.anchor_frame()


def all_tables(s: SimulatedSource, day: date) -> dict[str, pl.DataFrame]:
    out = {f"candles_{v}": s.candles(v, day) for v in schemas.VENUES}
    out.update(
        fx=s.fx(day), orderbook=s.orderbook(day), onchain=s.onchain(day), macro=s.macro(day), news=s.news(day)
    )
    return out


def cheap_tables(s: SimulatedSource, day: date) -> dict[str, pl.DataFrame]:
    out = {f"candles_{v}": s.candles(v, day) for v in schemas.VENUES}
    out.update(fx=s.fx(day), onchain=s.onchain(day), macro=s.macro(day), news=s.news(day))
    out["orderbook"] = s.orderbook(day, venue="upbit", symbol="BTC/KRW")
    return out


def days_of(anchors: pl.DataFrame, regime: str, n: int) -> list[date]:
    """n days of ``regime`` spread over the whole path (deterministic for seed 7)."""
    days = anchors.filter(pl.col("regime") == regime)["day"].to_list()
    assert len(days) >= n, f"seed 7 has only {len(days)} {regime} days"
    return [days[k] for k in np.linspace(0, len(days) - 1, n).astype(int)]


# ----------------------------------------------------------------------------- protocol and schemas
def test_protocol_and_build_source() -> None:
    s = build_source("simulated", seed=3, orderbook_interval_ms=1000)
    assert isinstance(s, SimulatedSource) and isinstance(s, MarketSource)
    assert s.name == "simulated" and s.seed == 3 and s.orderbook_interval_ms == 1000
    for table in schemas.TABLES:
        assert s.provides(table)
    for venue in schemas.VENUES:
        assert s.provides("candles", venue)
    assert not s.provides("candles", "coinbase")
    assert not s.provides("trades")


def test_schemas_exact_and_sorted(src: SimulatedSource) -> None:
    tables = cheap_tables(src, DAY)
    for name, frame in tables.items():
        table = name.split("_")[0]
        assert schemas.schema_problems(frame, schemas.TABLES[table]) == [], name
        assert frame.height > 0, name
        lo, hi = datetime(2024, 3, 13, tzinfo=UTC), datetime(2024, 3, 14, tzinfo=UTC)
        assert frame["ts"].min() >= lo and frame["ts"].max() < hi, name
    keys = {
        "candles_upbit": ["symbol", "ts"],
        "fx": ["series", "ts"],
        "orderbook": ["venue", "symbol", "ts"],
        "onchain": ["coin", "ts"],
        "macro": ["series", "ts"],
        "news": ["ts"],
    }
    for name, key in keys.items():
        assert tables[name].equals(tables[name].sort(key, maintain_order=True)), name
    for venue, symbols in SYMBOLS.items():
        c = tables[f"candles_{venue}"]
        assert sorted(c["symbol"].unique().to_list()) == sorted(symbols)
        assert c.group_by("symbol").len()["len"].to_list() == [1440] * len(symbols)
        assert (c["interval_s"] == 60).all() and (c["venue"] == venue).all()
        assert (c["base"] + "/" + c["quote"] == c["symbol"]).all()


def test_errors_name_the_problem(src: SimulatedSource) -> None:
    with pytest.raises(ValueError, match=r"2015-01-01 \.\. 2035-12-31"):
        src.candles("upbit", date(2014, 12, 31))
    with pytest.raises(ValueError, match="outside"):
        src.fx(date(2036, 1, 1))
    with pytest.raises(ValueError, match="unknown venue"):
        src.candles("coinbase", DAY)
    with pytest.raises(TypeError, match=r"datetime\.date"):
        src.candles("upbit", datetime(2024, 3, 13, tzinfo=UTC))
    with pytest.raises(ValueError, match="divisor"):
        SimulatedSource(orderbook_interval_ms=7)
    # The last day of the range still works (its closing anchor exists).
    assert src.candles("binance", date(2035, 12, 31)).height == 2 * 1440


# ----------------------------------------------------------------------------- determinism and continuity
def test_determinism_and_day_independence() -> None:
    clear_caches()
    alone = cheap_tables(SimulatedSource(seed=11), DAY)
    clear_caches()
    s = SimulatedSource(seed=11)
    for d in (DAY + timedelta(days=1), DAY - timedelta(days=1), date(2019, 5, 5)):
        cheap_tables(s, d)
    after = cheap_tables(s, DAY)
    for name in alone:
        assert alone[name].equals(after[name]), name
    other = cheap_tables(SimulatedSource(seed=12), DAY)
    for name in ("candles_upbit", "fx", "orderbook", "onchain", "macro"):
        assert not alone[name].equals(other[name]), name
    assert not alone["news"]["headline"].equals(other["news"]["headline"])


@pytest.mark.parametrize("day", [date(2017, 12, 31), DAY, date(2024, 3, 16)])  # incl. a Sat -> Sun join
def test_last_close_equals_next_open(src: SimulatedSource, day: date) -> None:
    nxt = day + timedelta(days=1)
    for venue, symbols in SYMBOLS.items():
        a, b = src.candles(venue, day), src.candles(venue, nxt)
        for sym in symbols:
            last = a.filter(pl.col("symbol") == sym)["close"][-1]
            first = b.filter(pl.col("symbol") == sym)["open"][0]
            assert last == first, (venue, sym, last, first)
    fa = src.fx(day).filter(pl.col("series") == "intraday")
    fb = src.fx(nxt).filter(pl.col("series") == "intraday")
    assert fa["close"][-1] == fb["open"][0]
    # Within a day, every bar opens at the previous close.
    c = src.candles("upbit", day).filter(pl.col("symbol") == "BTC/KRW")
    assert (c["open"][1:].to_numpy() == c["close"][:-1].to_numpy()).all()


# ----------------------------------------------------------------------------- candles and FX
def test_ohlc_consistency_and_volumes(src: SimulatedSource) -> None:
    for venue in schemas.VENUES:
        c = src.candles(venue, DAY)
        o, h, lo, cl = (c[k].to_numpy() for k in ("open", "high", "low", "close"))
        assert (lo > 0).all() and (h >= np.maximum(o, cl)).all() and (lo <= np.minimum(o, cl)).all()
        assert (h > lo).all()
        v, qv = c["volume"].to_numpy(), c["quote_volume"].to_numpy()
        assert (v > 0).all() and (qv >= v * lo - 1e-9).all() and (qv <= v * h + 1e-9).all()
    # Levels are realistic for March 2024.
    b = src.candles("binance", DAY)
    btc = b.filter(pl.col("symbol") == "BTC/USDT")["close"].mean()
    eth = b.filter(pl.col("symbol") == "ETH/USDT")["close"].mean()
    assert 15_000 < btc < 250_000 and 500 < eth < 15_000
    fx = src.fx(DAY).filter(pl.col("series") == "intraday")["close"]
    assert 1000 < fx.mean() < 1800


def test_fx_fixing_and_weekend_calm(src: SimulatedSource) -> None:
    fx = src.fx(DAY)
    fixing = fx.filter(pl.col("series") == "fixing")
    assert fixing.height == 1
    row = fixing.row(0, named=True)
    assert row["ts"] == datetime(2024, 3, 13, tzinfo=UTC)
    assert row["published_at"] == datetime(2024, 3, 13, 6, 30, tzinfo=UTC)  # 15:30 KST
    assert row["open"] is None and row["high"] is None and row["low"] is None and row["interval_s"] == 86400
    intraday = fx.filter(pl.col("series") == "intraday")
    assert intraday.height == 1440
    assert (intraday["published_at"] == intraday["ts"] + timedelta(minutes=1)).all()
    bar = intraday.filter(pl.col("ts") == datetime(2024, 3, 13, 6, 29, tzinfo=UTC))
    assert bar["close"][0] == row["close"]  # the fixing is the path's value when it is published
    assert (fx["source"] == "simulated").all()
    assert src.fx(date(2024, 3, 16)).filter(pl.col("series") == "fixing").height == 0  # Saturday

    def minute_vol(days: list[date]) -> float:
        r = [
            np.diff(np.log(src.fx(d).filter(pl.col("series") == "intraday")["close"].to_numpy()))
            for d in days
        ]
        return float(np.std(np.concatenate(r)))

    start = date(2023, 1, 2)  # a Monday
    weeks = [start + timedelta(weeks=w) for w in range(4)]
    weekdays = minute_vol([w + timedelta(days=k) for w in weeks for k in range(5)])
    weekends = minute_vol([w + timedelta(days=k) for w in weeks for k in (5, 6)])
    assert weekends < 0.5 * weekdays


def test_korean_volume_follows_kst(src: SimulatedSource) -> None:
    days = [date(2024, 3, 11) + timedelta(days=k) for k in range(4)]
    c = pl.concat([src.candles("upbit", d) for d in days]).filter(pl.col("symbol") == "BTC/KRW")
    kst_hour = (c["ts"].dt.hour().to_numpy() + 9) % 24
    v = c["volume"].to_numpy()
    evening = v[(kst_hour >= 20) & (kst_hour < 24)].mean()
    night = v[(kst_hour >= 3) & (kst_hour < 7)].mean()
    assert evening > 2.0 * night


# ----------------------------------------------------------------------------- order books
def test_orderbook_structure(src: SimulatedSource) -> None:
    ob = src.orderbook(DAY)
    counts = ob.group_by("venue", "symbol").len()
    assert counts.height == 7 and (counts["len"] == 86_400_000 // 5000).all()
    bid_px = ob.select([f"bid_px_{k}" for k in range(1, 11)]).to_numpy()
    ask_px = ob.select([f"ask_px_{k}" for k in range(1, 11)]).to_numpy()
    sizes = ob.select([c for c in ob.columns if "_sz_" in c]).to_numpy()
    assert (bid_px[:, 0] < ask_px[:, 0]).all()
    assert (np.diff(bid_px, axis=1) < 0).all() and (np.diff(ask_px, axis=1) > 0).all()
    assert (bid_px > 0).all() and (sizes > 0).all()
    # Books agree with the candles: at each minute start the open sits inside the touch, and every
    # snapshot's touch overlaps its minute's [low, high] range.
    for venue, symbols in SYMBOLS.items():
        c = src.candles(venue, DAY)
        for sym in symbols:
            book = ob.filter((pl.col("venue") == venue) & (pl.col("symbol") == sym))
            bars = c.filter(pl.col("symbol") == sym)
            m = np.arange(book.height) // 12
            b1, a1 = book["bid_px_1"].to_numpy(), book["ask_px_1"].to_numpy()
            assert (b1[::12] <= bars["open"].to_numpy()).all() and (a1[::12] >= bars["open"].to_numpy()).all()
            assert (b1 <= bars["high"].to_numpy()[m]).all() and (a1 >= bars["low"].to_numpy()[m]).all()
            spread_bps = float(np.median((a1 - b1) / b1)) * 1e4
            assert 0 < spread_bps < 30, (venue, sym, spread_bps)


def test_orderbook_100ms_one_market() -> None:
    # Its speed is measured by benchmarks/bench_market_data.py --orderbook-ms 100, never by a timed test.
    s = SimulatedSource(orderbook_interval_ms=100)
    ob = s.orderbook(DAY, venue="binance", symbol="BTC/USDT")
    assert ob.height == 864_000 and (ob["ask_px_1"] > ob["bid_px_1"]).all()
    assert ob["ts"].diff().drop_nulls().dt.total_milliseconds().unique().to_list() == [100]


# ----------------------------------------------------------------------------- macro, on-chain, news
def test_macro_close_times_follow_dst(src: SimulatedSource) -> None:
    def ts_of(day: date) -> dict[str, datetime]:
        return dict(
            zip(*src.macro(day).select("series", "ts").to_dict(as_series=False).values(), strict=True)
        )

    july, january = ts_of(date(2024, 7, 10)), ts_of(date(2024, 1, 10))
    assert july["vix"] == datetime(2024, 7, 10, 20, 15, tzinfo=UTC)
    assert january["vix"] == datetime(2024, 1, 10, 21, 15, tzinfo=UTC)
    assert july["kospi"] == january["kospi"].replace(month=7) == datetime(2024, 7, 10, 6, 30, tzinfo=UTC)
    assert july["gold"] == datetime(2024, 7, 10, 14, 0, tzinfo=UTC)
    assert january["gold"] == datetime(2024, 1, 10, 15, 0, tzinfo=UTC)
    assert july["silver"] == datetime(2024, 7, 10, 11, 0, tzinfo=UTC)
    assert july["us10y"] == datetime(2024, 7, 10, 22, 0, tzinfo=UTC)
    assert january["dxy"] == datetime(2024, 1, 10, 22, 0, tzinfo=UTC)
    m = src.macro(date(2024, 7, 10))
    assert sorted(m["series"].to_list()) == sorted(schemas.MACRO_SERIES)
    assert (m["published_at"] >= m["ts"]).all()
    assert src.macro(date(2024, 7, 13)).height == 0  # Saturday
    # A weekday's value changes from the previous weekday's; weekend closes do not exist.
    v = {r["series"]: r["value"] for r in m.iter_rows(named=True)}
    assert 1000 < v["kospi"] < 6000 and 300 < v["kosdaq"] < 2000 and 8 < v["vix"] < 90
    assert 70 < v["dxy"] < 130 and 800 < v["gold"] < 8000 and 8 < v["silver"] < 150
    assert 0 < v["us2y"] < 8 and 0 < v["us10y"] < 8


def test_onchain(src: SimulatedSource, anchors: pl.DataFrame) -> None:
    oc = src.onchain(DAY)
    assert oc.group_by("coin").len().sort("coin")["len"].to_list() == [144, 144]
    assert (oc["published_at"] == oc["ts"] + timedelta(minutes=10)).all()
    for col in ("exchange_inflow", "exchange_outflow", "hash_rate", "difficulty", "mvrv", "nvt"):
        assert (oc[col] > 0).all(), col
    assert (oc["active_addresses"] > 0).all() and (oc["whale_tx_count"] >= 0).all()
    # Difficulty is piecewise constant: one value per day, changing only at 14-day epochs.
    diffs = [
        src.onchain(DAY + timedelta(days=k)).filter(pl.col("coin") == "BTC")["difficulty"] for k in range(15)
    ]
    assert all(d.n_unique() == 1 for d in diffs)
    assert len({d[0] for d in diffs}) == 2
    # Inflows (in USD) rise when the premium is rich.
    days = days_of(anchors, "euphoric", 6) + days_of(anchors, "discount", 6)
    prem, flow_usd = [], []
    for d in days:
        o = src.onchain(d).filter(pl.col("coin") == "BTC")
        px = src.candles("binance", d).filter(pl.col("symbol") == "BTC/USDT")["close"].mean()
        prem.append(anchors.filter(pl.col("day") == d)["premium_btc"][0])
        flow_usd.append(np.log(o["exchange_inflow"].mean() * px))
    assert np.corrcoef(prem, flow_usd)[0, 1] > 0.5


def test_news(src: SimulatedSource, anchors: pl.DataFrame) -> None:
    n = src.news(DAY)
    assert 5 <= n.height <= 120
    assert n["ts"].is_sorted() and n["headline"].str.len_chars().min() > 10
    assert set(n["source"].unique().to_list()) <= {
        "Yonhap",
        "CoinDesk Korea",
        "Bloomberg",
        "Reuters",
        "The Block",
    }
    assert n["text"].null_count() > 0 and n["text"].null_count() < n.height
    text = " ".join(n["headline"].to_list()).lower()
    assert any(w in text for w in ("bitcoin", "ethereum", "upbit", "kimchi premium", "won"))
    # KST daytime carries more news than the small hours.
    kst = [(t.hour + 9) % 24 for d in (DAY, DAY + timedelta(days=1)) for t in src.news(d)["ts"].to_list()]
    assert sum(7 <= h < 19 for h in kst) > 3 * sum(1 <= h < 7 for h in kst)
    # Tone follows the regime: euphoric days read positive, discount days negative.
    assert not POSITIVE_WORDS & NEGATIVE_WORDS

    def tone(d: date) -> float:
        return float(np.mean([headline_tone(h) for h in src.news(d)["headline"].to_list()]))

    euphoric = [tone(d) for d in days_of(anchors, "euphoric", 12)]
    discount = [tone(d) for d in days_of(anchors, "discount", 12)]
    assert np.mean(euphoric) > 0.3 and np.mean(discount) < -0.1
    assert np.mean(euphoric) - np.mean(discount) > 0.5


# ----------------------------------------------------------------------------- premium statistics
def test_premium_daily_statistics(anchors: pl.DataFrame) -> None:
    p = anchors["premium_btc"].to_numpy()
    dp = np.diff(p)
    ar1 = np.corrcoef(p[:-1], p[1:])[0, 1]
    assert 0.85 <= ar1 <= 0.99, ar1  # real daily AR(1): 0.952
    kurt = np.mean((dp - dp.mean()) ** 4) / dp.var() ** 2 - 3
    assert kurt > 1, kurt
    assert np.mean((p > -0.05) & (p < 0.60)) > 0.99 and p.min() > -0.10 and p.max() < 0.70
    assert 0.005 < np.std(dp) < 0.03  # real: 1.40 pp
    # Premium dips when USD/KRW jumps (sticky KRW prices).
    dfx = np.diff(np.log(anchors["usdkrw"].to_numpy()))
    assert np.corrcoef(dp, dfx)[0, 1] < -0.08
    # Regimes order the premium level and all of them occur.
    means = anchors.group_by("regime").agg(pl.col("premium_btc").mean()).sort("premium_btc")
    assert means["regime"].to_list() == ["discount", "calm", "normal", "euphoric"]
    assert means.filter(pl.col("regime") == "euphoric")["premium_btc"][0] > 0.05
    # USDT-based premium is smaller and calmer than the FX-based one.
    u = (1 + p) / (1 + anchors["usdt_premium"].to_numpy()) - 1
    assert np.std(u) < np.std(p) and np.mean(np.abs(u)) < np.mean(np.abs(p))
    assert np.corrcoef(anchors["usdt_premium"].to_numpy(), p)[0, 1] > 0.5


def test_price_statistics(anchors: pl.DataFrame) -> None:
    rb = np.diff(np.log(anchors["btc_usdt"].to_numpy()))
    re = np.diff(np.log(anchors["eth_usdt"].to_numpy()))
    assert np.corrcoef(np.abs(rb[:-1]), np.abs(rb[1:]))[0, 1] > 0.1  # volatility clustering
    assert 0.65 < np.corrcoef(rb, re)[0, 1] < 0.9
    assert 1.1 < np.std(re) / np.std(rb) < 1.6
    assert 0.015 < np.std(rb) < 0.06
    k = np.mean((rb - rb.mean()) ** 4) / rb.var() ** 2 - 3
    assert k > 2
    levels = anchors.filter(pl.col("day").dt.year() == 2024)
    assert 20_000 < levels["btc_usdt"].median() < 200_000 and 1_000 < levels["eth_usdt"].median() < 10_000
    assert 1_100 < levels["usdkrw"].median() < 1_700


def test_premium_minute_statistics(src: SimulatedSource, anchors: pl.DataFrame) -> None:
    """A week of minutes in a normal regime, the premium recomputed from the tables themselves."""
    normal = anchors.with_columns(run=pl.col("regime").rle_id()).filter(pl.col("regime") == "normal")
    runs = normal.group_by("run").agg(pl.col("day").min(), pl.len()).filter(pl.col("len") >= 30).sort("run")
    start = runs["day"][len(runs) // 2] + timedelta(days=7)
    days = [start + timedelta(days=k) for k in range(7)]
    kr = pl.concat([src.candles("upbit", d) for d in days])
    bn = pl.concat([src.candles("binance", d) for d in days])
    fx = pl.concat([src.fx(d).filter(pl.col("series") == "intraday") for d in days])
    btc_kr = kr.filter(pl.col("symbol") == "BTC/KRW")["close"].to_numpy()
    btc_bn = bn.filter(pl.col("symbol") == "BTC/USDT")["close"].to_numpy()
    usdkrw = fx["close"].to_numpy()
    prem = btc_kr / (btc_bn * usdkrw) - 1
    # The table premium at each day's last bar close equals the anchor premium at the next 00:00.
    for k, d in enumerate(days):
        truth = anchors.filter(pl.col("day") == d + timedelta(days=1))["premium_btc"][0]
        assert prem[1440 * (k + 1) - 1] == pytest.approx(truth, abs=1e-12)
    hourly = prem[59::60]
    dh = np.diff(hourly)
    assert 0.001 < np.std(dh) < 0.01, np.std(dh)  # 0.1 .. 1 pp; real BTC 0.65 pp over all regimes
    assert np.corrcoef(hourly[:-1], hourly[1:])[0, 1] > 0.7
    # Premium falls on USD/KRW up-moves at the 10-minute scale (weekday sessions dominate the moves).
    p10, f10 = prem[9::10], np.log(usdkrw[9::10])
    assert np.corrcoef(np.diff(p10), np.diff(f10))[0, 1] < -0.05
    # Bithumb tracks Upbit within a small basis; ETH premium tracks BTC's.
    bt = pl.concat([src.candles("bithumb", d) for d in days])
    basis = bt.filter(pl.col("symbol") == "BTC/KRW")["close"].to_numpy() / btc_kr - 1
    assert np.mean(np.abs(basis) < 0.01) > 0.99 and 0.0002 < np.std(basis) < 0.005
    eth = kr.filter(pl.col("symbol") == "ETH/KRW")["close"].to_numpy()
    eth_bn = bn.filter(pl.col("symbol") == "ETH/USDT")["close"].to_numpy()
    prem_eth = eth / (eth_bn * usdkrw) - 1
    assert np.corrcoef(np.diff(prem_eth[59::60]), dh)[0, 1] > 0.6


def test_params_are_validated_and_hashable() -> None:
    p = SimParams()
    assert hash(p) == hash(SimParams())
    with pytest.raises(ValueError, match="regime_level"):
        SimParams(regime_level=(0.0, 0.01))
    with pytest.raises(ValueError, match="probabilities"):
        SimParams(regime_transition=((1.0, 0.0, 0.0, 0.0),) * 3 + ((0.5, 0.6, 0.0, 0.0),))
    # A shorter range is a different market whose days are still consistent.
    s = SimulatedSource(seed=1, params=SimParams(origin=date(2024, 1, 1), horizon=date(2024, 12, 31)))
    assert s.candles("upbit", date(2024, 6, 1)).height == 3 * 1440
    with pytest.raises(ValueError):
        s.candles("upbit", date(2025, 1, 1))


def test_full_day_tables(src: SimulatedSource) -> None:
    """All tables of one day (5 s books, all markets); its speed is benchmarks/bench_market_data.py's."""
    tables = all_tables(src, date(2024, 3, 20))
    assert tables["orderbook"].height == 7 * 17_280


def test_news_quotes_only_values_published_by_its_time() -> None:
    """A headline's quoted USD/KRW is the latest intraday FX close published at or before it (no look-ahead)."""
    import re
    from datetime import date as _date

    import polars as pl

    from kimp.market_data.simulated import SimulatedSource

    src = SimulatedSource(seed=7)
    checked = 0
    for d in (_date(2024, 3, 4), _date(2024, 3, 5)):
        fx = (
            src.fx(d)
            .filter(pl.col("series") == "intraday")
            .select("published_at", "close")
            .sort("published_at")
        )
        news = src.news(d).filter(pl.col("text").is_not_null()).sort("ts")
        quoted = news.with_columns(
            quoted=pl.col("text")
            .str.extract(r"USD/KRW ([0-9,]+\.[0-9])", 1)
            .str.replace_all(",", "")
            .cast(pl.Float64)
        ).drop_nulls("quoted")
        joined = quoted.join_asof(fx, left_on="ts", right_on="published_at", strategy="backward")
        for row in joined.iter_rows(named=True):
            if row["close"] is None:  # before the first FX bar of the day closes: value from the day before
                continue
            assert row["quoted"] == round(row["close"], 1), (row["ts"], row["text"])
            checked += 1
        assert re.search(r"USD/KRW", " ".join(news["text"].to_list()))
    assert checked >= 5
