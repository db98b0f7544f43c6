"""The kimchi premium: both definitions, time of knowledge of FX, stale bars, intervals, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from kimp.errors import MarketDataError
from kimp.market_data import schemas
from kimp.premium import compute_premium
from tests.fakes import BTC_USDT, ETH_USDT, FX_RATE, USDT_KRW, FakeSource

DAY = date(2024, 1, 2)


def _fx(rows: list[tuple[datetime, datetime, float]]) -> pl.DataFrame:
    return schemas.conform(
        pl.DataFrame(
            {
                "ts": [r[0] for r in rows],
                "series": "daily_close",
                "interval_s": 86400,
                "published_at": [r[1] for r in rows],
                "open": None,
                "high": None,
                "low": None,
                "close": [r[2] for r in rows],
                "source": "test",
            },
            schema_overrides={"open": pl.Float64, "high": pl.Float64, "low": pl.Float64},
        ),
        schemas.FX,
        table="fx",
    )


def _inputs(source: FakeSource | None = None) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    src = source or FakeSource()
    return {"upbit": src.candles("upbit", DAY), "bithumb": src.candles("bithumb", DAY)}, src.candles(
        "binance", DAY
    )


def test_both_definitions_match_hand_computation() -> None:
    kr, binance = _inputs()
    fx = _fx([(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), FX_RATE)])
    out = compute_premium(kr, binance, fx, day=DAY)
    assert out.height == 2 * 2 * 24
    btc_upbit = out.filter((pl.col("coin") == "BTC") & (pl.col("kr_venue") == "upbit"))
    assert btc_upbit["premium_fx"].to_list() == pytest.approx([0.02] * 24)
    # USDT-based: KRW / (USDT x KRW-USDT) - 1, with KRW-USDT at a 1% premium over FX.
    first = btc_upbit.row(0, named=True)
    assert first["premium_usdt"] == pytest.approx(BTC_USDT * FX_RATE * 1.02 / (BTC_USDT * USDT_KRW) - 1)
    eth_bithumb = out.filter((pl.col("coin") == "ETH") & (pl.col("kr_venue") == "bithumb"))
    assert eth_bithumb["premium_fx"].to_list() == pytest.approx([0.03] * 24)
    assert eth_bithumb["binance_close"][0] == pytest.approx(ETH_USDT)
    assert out.schema["ts"] == schemas.UTC_TS


def test_bar_uses_only_fx_published_by_its_close() -> None:
    kr, binance = _inputs()
    # FX dated Jan 1 is published Jan 2 00:00; FX dated Jan 2 (very different) only at Jan 3 00:00.
    fx = _fx(
        [
            (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), 1300.0),
            (datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC), 1400.0),
        ]
    )
    out = compute_premium(kr, binance, fx, day=DAY).filter(
        (pl.col("coin") == "BTC") & (pl.col("kr_venue") == "upbit")
    )
    used = out["usdkrw"].to_list()
    assert used[:23] == [1300.0] * 23  # closes at 01:00 .. 23:00 on Jan 2
    assert used[23] == 1400.0  # the 23:00 bar closes at Jan 3 00:00, exactly when Jan 2's close is published
    assert (out["fx_published_at"] <= out["ts"] + timedelta(hours=1)).all()


def test_fx_published_later_is_never_used() -> None:
    kr, binance = _inputs()
    fx = _fx([(datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, 0, 0, 1, tzinfo=UTC), 1300.0)])
    out = compute_premium(kr, binance, fx, day=DAY)
    assert out["usdkrw"].is_null().all()
    assert out["premium_fx"].is_null().all()
    assert out["premium_usdt"].is_not_null().all()  # the USDT definition needs no FX


def test_zero_volume_bars_are_stale_and_null() -> None:
    src = FakeSource(
        defects={
            "bithumb_candles": lambda f: f.with_columns(
                volume=pl.when(pl.col("ts").dt.hour() < 2).then(0.0).otherwise(pl.col("volume"))
            )
        }
    )
    kr, binance = _inputs(src)
    fx = _fx([(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), FX_RATE)])
    out = compute_premium(kr, binance, fx, day=DAY).filter(pl.col("kr_venue") == "bithumb")
    stale = out.filter(pl.col("stale"))
    assert stale.height == 4 and stale["premium_fx"].is_null().all() and stale["premium_usdt"].is_null().all()
    assert out.filter(~pl.col("stale"))["premium_fx"].is_not_null().all()


def test_finest_common_interval_is_used() -> None:
    kr, binance = _inputs()
    # Upbit also has 5-minute bars, but Binance only hourly: the hourly bars must be matched.
    five = kr["upbit"].with_columns(interval_s=pl.lit(300, pl.Int32), ts=pl.col("ts") + timedelta(minutes=5))
    kr["upbit"] = pl.concat([kr["upbit"], five])
    fx = _fx([(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), FX_RATE)])
    out = compute_premium(kr, binance, fx, day=DAY)
    assert set(out["interval_s"].to_list()) == {3600}
    assert out["premium_fx"].is_not_null().all()


def test_missing_binance_leaves_premium_null_not_zero() -> None:
    kr, binance = _inputs()
    fx = _fx([(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), FX_RATE)])
    out = compute_premium(kr, binance.filter(pl.col("base") == "BTC"), fx, day=DAY)
    eth = out.filter(pl.col("coin") == "ETH")
    assert eth.height > 0 and eth["premium_fx"].is_null().all()


def test_no_korean_candles_is_a_clear_error() -> None:
    _, binance = _inputs()
    empty = schemas.empty(schemas.CANDLES)
    with pytest.raises(MarketDataError) as err:
        compute_premium({"upbit": empty, "bithumb": empty}, binance, _fx([]), day=DAY)
    assert "2024-01-02" in str(err.value) and "Korean" in str(err.value)
