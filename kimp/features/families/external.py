"""On-chain, macro, news and calendar families: slow external data joined as of its publication time."""

from __future__ import annotations

import math

import polars as pl

from kimp.features.expr import Expr, col, when
from kimp.features.families.price import DAY, half
from kimp.features.inputs import MACRO_MAX_AGE, ONCHAIN_FLOWS, ONCHAIN_LEVELS, ONCHAIN_MAX_AGE
from kimp.features.registry import Registry
from kimp.market_data.schemas import MACRO_SERIES

FLOW_WINDOWS = {"1h": 3600, "1d": DAY}
NEWS_WINDOWS = {"1h": 3600, "4h": 14400, "1d": DAY}
MACRO_WORDS = {
    "kospi": "KOSPI index",
    "kosdaq": "KOSDAQ index",
    "vix": "VIX",
    "dxy": "US dollar index (DXY)",
    "gold": "gold (USD/oz)",
    "silver": "silver (USD/oz)",
    "us2y": "US 2-year yield (%)",
    "us10y": "US 10-year yield (%)",
}


def _roll_sum(e: Expr, reg: Registry, sec: int) -> Expr:
    w = reg.bars(sec)
    return e.rolling_sum(window_size=w, min_samples=half(w))


def add_onchain(reg: Registry) -> None:
    src = ("onchain",)
    age = int(ONCHAIN_MAX_AGE.total_seconds())
    for c in ONCHAIN_LEVELS:
        reg.add(
            f"onchain_{c}",
            "onchain",
            f"{c.replace('_', ' ')}: latest value published by the bar close (null if "
            f"older than {ONCHAIN_MAX_AGE})",
            lookback_s=age,
            sources=src,
            make=lambda c=c: col(f"oc_{c}"),
        )
        reg.add(
            f"onchain_{c}_chg_1d",
            "onchain",
            f"log change of {c.replace('_', ' ')} over 1 day (as-of values)",
            lookback_s=age + DAY,
            sources=src,
            make=lambda c=c: (col(f"oc_{c}") / col(f"oc_{c}").shift(reg.bars(DAY))).log(),
        )
    for c in ONCHAIN_FLOWS:
        for wl, sec in FLOW_WINDOWS.items():
            reg.add(
                f"onchain_{c}_{wl}",
                "onchain",
                f"sum of {c.replace('_', ' ')} over windows published in the last {wl}",
                lookback_s=sec,
                sources=src,
                window=wl,
                make=lambda c=c, sec=sec: _roll_sum(col(f"oc_{c}"), reg, sec),
            )
    for wl, sec in FLOW_WINDOWS.items():

        def net(sec: int = sec) -> Expr:
            inflow = _roll_sum(col("oc_exchange_inflow"), reg, sec)
            outflow = _roll_sum(col("oc_exchange_outflow"), reg, sec)
            return when(inflow + outflow > 0).then((inflow - outflow) / (inflow + outflow))

        reg.add(
            f"onchain_netflow_ratio_{wl}",
            "onchain",
            f"(exchange inflow - outflow) / (inflow + outflow) over {wl}"
            " (positive = coins moving onto exchanges, selling pressure)",
            lookback_s=sec,
            sources=src,
            window=wl,
            make=net,
        )


def add_macro(reg: Registry) -> None:
    src = ("macro",)
    age = int(MACRO_MAX_AGE.total_seconds())
    for s in MACRO_SERIES:
        w = MACRO_WORDS[s]
        reg.add(
            f"macro_{s}",
            "macro",
            f"{w}: latest value published by the bar close (null if older than {MACRO_MAX_AGE.days} days)",
            lookback_s=age,
            sources=src,
            series=s,
            make=lambda s=s: col(f"m_{s}"),
        )
        reg.add(
            f"macro_{s}_chg",
            "macro",
            f"{w}: log change of the latest value vs the observation before it "
            f"(null when that one is more than {MACRO_MAX_AGE.days} days older)",
            lookback_s=2 * age,
            sources=src,
            series=s,
            make=lambda s=s: col(f"m_{s}_chg"),
        )
        reg.add(
            f"macro_{s}_age_h",
            "macro",
            f"{w}: hours since the value in use was published",
            lookback_s=age,
            sources=src,
            series=s,
            make=lambda s=s: (col("_close") - col(f"m_{s}_pub")).dt.total_seconds().cast(pl.Float64) / 3600,
        )
    reg.add(
        "macro_yield_curve",
        "macro",
        "US 10-year minus 2-year yield (percentage points)",
        lookback_s=age,
        sources=src,
        make=lambda: col("m_us10y") - col("m_us2y"),
    )
    reg.add(
        "macro_gold_silver_ratio",
        "macro",
        "gold / silver price ratio",
        lookback_s=age,
        sources=src,
        make=lambda: col("m_gold") / col("m_silver"),
    )


def add_news(reg: Registry) -> None:
    src = ("news",)
    for wl, sec in NEWS_WINDOWS.items():
        reg.add(
            f"news_count_{wl}",
            "news",
            f"number of news items published in the last {wl}",
            lookback_s=sec,
            sources=src,
            window=wl,
            make=lambda sec=sec: _roll_sum(col("n_count"), reg, sec),
        )

        def tone(sec: int = sec) -> Expr:
            n = _roll_sum(col("n_count"), reg, sec)
            return (
                when(n > 0)
                .then(_roll_sum(col("n_tone"), reg, sec) / n)
                .otherwise(when(n.is_not_null()).then(0.0))
            )

        reg.add(
            f"news_tone_{wl}",
            "news",
            f"mean lexicon tone of news in the last {wl} (item tone = (positive - "
            "negative words) / (positive + negative) in [-1, 1]; 0 without news); the model-scored "
            "counterpart is the sentiment family",
            lookback_s=sec,
            sources=src,
            window=wl,
            make=tone,
        )
    reg.add(
        "news_coin_count_1d",
        "news",
        "news items in the last day that mention this coin",
        lookback_s=DAY,
        sources=src,
        make=lambda: _roll_sum(col("n_coin"), reg, DAY),
    )

    def coin_tone() -> Expr:
        n = _roll_sum(col("n_coin"), reg, DAY)
        return (
            when(n > 0)
            .then(_roll_sum(col("n_coin_tone"), reg, DAY) / n)
            .otherwise(when(n.is_not_null()).then(0.0))
        )

    reg.add(
        "news_coin_tone_1d",
        "news",
        "mean lexicon tone of the last day's news that mention this coin (0 without)",
        lookback_s=DAY,
        sources=src,
        make=coin_tone,
    )
    reg.add(
        "news_kimchi_count_1d",
        "news",
        "news items in the last day that mention the kimchi premium",
        lookback_s=DAY,
        sources=src,
        make=lambda: _roll_sum(col("n_kimchi"), reg, DAY),
    )


def add_calendar(reg: Registry) -> None:
    def frac(unit: str) -> Expr:
        t = col("ts")
        if unit == "day":
            return (t.dt.hour().cast(pl.Float64) * 60 + t.dt.minute().cast(pl.Float64)) / 1440
        return ((t.dt.weekday().cast(pl.Float64) - 1) * 24 + t.dt.hour().cast(pl.Float64)) / 168

    for unit, words in (("day", "UTC time of day"), ("week", "UTC time of week")):
        reg.add(
            f"cal_{unit}_sin",
            "calendar",
            f"sin(2 pi x {words} as a fraction)",
            lookback_s=0,
            sources=(),
            make=lambda unit=unit: (frac(unit) * 2 * math.pi).sin(),
        )
        reg.add(
            f"cal_{unit}_cos",
            "calendar",
            f"cos(2 pi x {words} as a fraction)",
            lookback_s=0,
            sources=(),
            make=lambda unit=unit: (frac(unit) * 2 * math.pi).cos(),
        )

    def kst_weekday() -> Expr:
        return col(reg.helper("_kst_wd", lambda: col("ts").dt.convert_time_zone("Asia/Seoul").dt.weekday()))

    def kst_minute() -> Expr:
        def make() -> Expr:
            kst = col("ts").dt.convert_time_zone("Asia/Seoul")
            return kst.dt.hour().cast(pl.Int32) * 60 + kst.dt.minute().cast(pl.Int32)

        return col(reg.helper("_kst_min", make))

    reg.add(
        "cal_krx_open",
        "calendar",
        "1 while the Korean stock market is open (09:00-15:30 KST, Mon-Fri; holidays not modelled)",
        lookback_s=0,
        sources=(),
        make=lambda: ((kst_weekday() <= 5) & (kst_minute() >= 540) & (kst_minute() < 930)).cast(pl.Float64),
    )
    reg.add(
        "cal_weekend_kst",
        "calendar",
        "1 on Saturday and Sunday in Korea (KST)",
        lookback_s=0,
        sources=(),
        make=lambda: (kst_weekday() >= 6).cast(pl.Float64),
    )
