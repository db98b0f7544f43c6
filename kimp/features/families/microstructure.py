"""Order-book microstructure, trade-based liquidity (VPIN, Kyle's lambda, Amihud) and volume families.

Order books: the 5-second snapshots are aggregated to bars in one group_by (kimp.features.inputs):
the last snapshot before the bar close (in [open, close)) gives depth per level, spread, imbalance and microprice;
bar means give the average spread and level-1 imbalance. Trade-based measures use candles only: a
bar's volume is split into buys and sells by bulk volume classification (Easley, Lopez de Prado,
O'Hara 2012), buy share = Phi(r / sd), since the sources carry no trade tape.
"""

from __future__ import annotations

import polars as pl

from kimp.features.expr import Expr, col, rolling_ols, when
from kimp.features.families.price import (
    DAY,
    PRICE_SERIES,
    bvc_buy_fraction,
    half,
    log_ret1,
    masked_sums,
    reg_min,
    std_min,
)
from kimp.features.registry import Registry
from kimp.market_data.schemas import BOOK_LEVELS

OB = ("orderbook",)
C = ("premium", "candles")
BOOK_SIDES = {"kr": "Korean-venue (coin/KRW)", "bn": "Binance (coin/USDT)"}
IMB_WINDOWS = {"5m": 300, "15m": 900, "1h": 3600}
LIQ_WINDOWS = {"1h": 3600, "4h": 14400, "1d": DAY}
RATE_WINDOWS = {"1m": 60, "15m": 900, "1h": 3600, "4h": 14400, "1d": DAY}
PRESSURE_WINDOWS = {"15m": 900, "1h": 3600, "4h": 14400, "1d": DAY}


def bvc_vsum(reg: Registry, s: str, w: int) -> Expr:
    """Rolling volume over the bars that have a bulk-volume classification (the denominator of VPIN and
    buy pressure: a bar whose buy share is unknown leaves both sums), a helper column."""

    def make() -> Expr:
        v = col(f"{s}_v")
        return (
            when(col(bvc_buy_fraction(reg, s)).is_not_null())
            .then(v)
            .rolling_sum(window_size=w, min_samples=half(w))
        )

    return col(reg.helper(f"_vsum_bvc_{s}_{w}", make))


def bvc_flow(reg: Registry, s: str, w: int, weight: Expr) -> Expr:
    """sum(weight x volume) / sum(volume) over the window's bars with a buy share (masked alike)."""
    v = col(f"{s}_v")
    buy = col(bvc_buy_fraction(reg, s))
    flow = when(buy.is_not_null()).then(weight * v).rolling_sum(window_size=w, min_samples=half(w))
    return flow / bvc_vsum(reg, s, w)  # no volume in the window: 0/0, nulled by the finite rule


def clv(s: str) -> Expr:
    """Close location value ((c-l) - (h-c)) / (h-l), 0 on a flat bar, null when h, l or c is missing."""
    h, lo, c = col(f"{s}_h"), col(f"{s}_l"), col(f"{s}_c")
    return (
        when(h > lo)
        .then(((c - lo) - (h - c)) / (h - lo))
        .when(h.is_not_null() & lo.is_not_null() & c.is_not_null())
        .then(0.0)
    )


def vmean(reg: Registry, s: str, w: int) -> Expr:
    return col(
        reg.helper(f"_vmean_{s}_{w}", lambda: col(f"{s}_v").rolling_mean(window_size=w, min_samples=half(w)))
    )


def add_orderbook(reg: Registry) -> None:
    for v, words in BOOK_SIDES.items():

        def ob(name: str, v: str = v) -> Expr:
            return col(f"{v}_ob_{name}")

        reg.add(
            f"{v}_ob_spread_bps",
            "orderbook",
            f"{words} bid-ask spread in bps of the mid, last snapshot in the bar (before its close)",
            lookback_s=0,
            sources=OB,
            make=lambda ob=ob: ob("spread"),
        )
        reg.add(
            f"{v}_ob_spread_bps_mean",
            "orderbook",
            f"{words} mean bid-ask spread in bps over the bar's snapshots",
            lookback_s=0,
            sources=OB,
            make=lambda ob=ob: ob("spread_mean"),
        )
        for lvl in (1, 5, 10):
            reg.add(
                f"{v}_ob_imbalance_l{lvl}",
                "orderbook",
                f"{words} depth imbalance over the best {lvl} levels: "
                "(bid size - ask size) / (bid size + ask size), last snapshot",
                lookback_s=0,
                sources=OB,
                levels=lvl,
                make=lambda ob=ob, lvl=lvl: ob(f"imb{lvl}"),
            )
        reg.add(
            f"{v}_ob_imbalance_l1_mean",
            "orderbook",
            f"{words} level-1 imbalance averaged over the bar's snapshots",
            lookback_s=0,
            sources=OB,
            make=lambda ob=ob: ob("imb1_mean"),
        )
        reg.add(
            f"{v}_ob_microprice_bps",
            "orderbook",
            f"{words} microprice (size-weighted best quotes) minus mid, bps",
            lookback_s=0,
            sources=OB,
            make=lambda ob=ob: ob("micro"),
        )
        for side, letter in (("bid", "b"), ("ask", "a")):
            for lvl in range(1, BOOK_LEVELS + 1):
                reg.add(
                    f"{v}_ob_{side}_depth_l{lvl}",
                    "orderbook",
                    f"{words} {side} size at level {lvl} (base units), last snapshot",
                    lookback_s=0,
                    sources=OB,
                    side=side,
                    level=lvl,
                    make=lambda ob=ob, letter=letter, lvl=lvl: ob(f"{letter}sz{lvl}"),
                )
        for lvl in (1, 5):
            for wl, sec in IMB_WINDOWS.items():
                reg.add(
                    f"{v}_ob_imbalance_l{lvl}_avg_{wl}",
                    "orderbook",
                    f"{words} level-{lvl} imbalance (last snapshot per bar) averaged over {wl}",
                    lookback_s=sec,
                    sources=OB,
                    levels=lvl,
                    window=wl,
                    make=lambda ob=ob, lvl=lvl, sec=sec: ob(f"imb{lvl}").rolling_mean(
                        window_size=reg.bars(sec), min_samples=half(reg.bars(sec))
                    ),
                )


def add_liquidity(reg: Registry) -> None:
    for s, (what, _) in PRICE_SERIES.items():
        for wl, sec in LIQ_WINDOWS.items():

            def vpin(s: str = s, sec: int = sec) -> Expr:
                buy = col(bvc_buy_fraction(reg, s))
                return bvc_flow(reg, s, reg.bars(sec), (2 * buy - 1).abs())

            reg.add(
                f"{s}_vpin_{wl}",
                "liquidity",
                f"VPIN-style order-flow toxicity of the {what} over {wl}: "
                "sum |buy - sell| / sum volume, buys by bulk volume classification Phi(r / sd_1d)",
                lookback_s=sec + DAY,
                sources=C,
                window=wl,
                make=vpin,
            )

            def kyle(s: str = s, sec: int = sec) -> Expr:
                # OLS slope of the 1-bar log return on signed quote volume (buy - sell), per million quote units
                w = reg.bars(sec)
                r = col(log_ret1(reg, s))
                q = col(
                    reg.helper(
                        f"_signed_qv_{s}",
                        lambda s=s: (2 * col(bvc_buy_fraction(reg, s)) - 1) * col(f"{s}_qv") / 1e6,
                    )
                )
                return rolling_ols(q, r, window=w, min_count=reg_min(w))

            reg.add(
                f"{s}_kyle_lambda_{wl}",
                "liquidity",
                f"Kyle's lambda of the {what} over {wl}: OLS slope of the "
                "1-bar log return on signed quote volume (millions; sign by bulk volume classification)",
                lookback_s=sec + DAY,
                sources=C,
                window=wl,
                make=kyle,
            )

            def amihud(s: str = s, sec: int = sec) -> Expr:
                w = reg.bars(sec)
                qv = col(f"{s}_qv")
                ill = when(qv > 0).then(col(log_ret1(reg, s)).abs() / qv * 1e6)
                return ill.rolling_mean(window_size=w, min_samples=half(w))

            reg.add(
                f"{s}_amihud_{wl}",
                "liquidity",
                f"Amihud illiquidity of the {what} over {wl}: mean |r| / quote "
                "volume (per million quote units; bars without volume skipped)",
                lookback_s=sec,
                sources=C,
                window=wl,
                make=amihud,
            )


def add_volume(reg: Registry) -> None:
    for s, (what, _) in PRICE_SERIES.items():
        v = col(f"{s}_v")
        base = f"{what.split(' close')[0]} volume"
        for wl, sec in RATE_WINDOWS.items():
            # the baseline is always longer than the window (a 1d rate over a 1d baseline is always 0)
            base_wl, base_sec = ("7d", 7 * DAY) if sec >= DAY else ("1d", DAY)

            def rate(s: str = s, sec: int = sec, base_sec: int = base_sec) -> Expr:
                w, wb = reg.bars(sec), reg.bars(base_sec)
                return (vmean(reg, s, w) / vmean(reg, s, wb)).log()

            reg.add(
                f"{s}_volume_rate_{wl}",
                "volume",
                f"{base} rate: ln(mean bar volume over {wl} / mean over {base_wl})",
                lookback_s=base_sec,
                sources=C,
                window=wl,
                baseline=base_wl,
                make=rate,
            )

        def large(s: str = s, v: Expr = v) -> Expr:
            def make() -> Expr:
                wd = reg.bars(DAY)
                m = vmean(reg, s, wd).shift(1)
                sd = v.rolling_std(window_size=wd, min_samples=std_min(wd)).shift(1)
                return when(m.is_not_null() & v.is_not_null()).then((v > m + 3 * sd).cast(pl.Float64))

            return col(reg.helper(f"_large_{s}", make))

        for wl, sec in LIQ_WINDOWS.items():
            reg.add(
                f"{s}_large_bars_{wl}",
                "volume",
                f"{base}: number of large-order bars over {wl} (bar volume > "
                "mean + 3 sd of the previous day's bars)",
                lookback_s=sec + DAY,
                sources=C,
                window=wl,
                make=lambda f=large, sec=sec: f().rolling_sum(
                    window_size=reg.bars(sec), min_samples=half(reg.bars(sec))
                ),
            )
        for wl, sec in LIQ_WINDOWS.items():

            def cmf(s: str = s, sec: int = sec, v: Expr = v) -> Expr:
                flow, vol = masked_sums(clv(s) * v, v, reg.bars(sec))
                return flow / vol

            reg.add(
                f"{s}_cmf_{wl}",
                "volume",
                f"{base} accumulation/distribution over {wl} (Chaikin money flow): "
                "sum(CLV x volume) / sum(volume), CLV = ((c-l) - (h-c)) / (h-l)",
                lookback_s=sec,
                sources=C,
                window=wl,
                make=cmf,
            )

        def ad_1d(s: str = s, v: Expr = v) -> Expr:
            wd = reg.bars(DAY)
            flow = clv(s) * v
            valid = flow.is_not_null()
            return when(valid).then(flow).rolling_sum(window_size=wd, min_samples=half(wd)) / when(
                valid
            ).then(v).rolling_mean(window_size=wd, min_samples=half(wd))

        reg.add(
            f"{s}_ad_line_1d",
            "volume",
            f"{base}: accumulation/distribution line over the last day, in units "
            "of a mean bar's volume: sum(CLV x volume) / mean volume",
            lookback_s=DAY,
            sources=C,
            make=ad_1d,
        )
        for wl, sec in PRESSURE_WINDOWS.items():

            def pressure(s: str = s, sec: int = sec) -> Expr:
                buy = col(bvc_buy_fraction(reg, s))
                return bvc_flow(reg, s, reg.bars(sec), 2 * buy - 1)

            reg.add(
                f"{s}_buy_pressure_{wl}",
                "volume",
                f"{base}: buy/sell pressure over {wl}, (buys - sells) / volume"
                " with bulk volume classification",
                lookback_s=sec + DAY,
                sources=C,
                window=wl,
                make=pressure,
            )
