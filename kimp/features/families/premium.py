"""Premium families: the kimchi premium itself (both definitions), its changes and spreads, FX moves,
and mean-reversion measures (z-scores, AR(1) half-life, distance from rolling quantiles and range)."""

from __future__ import annotations

import math

import polars as pl

from kimp.features.expr import Expr, col, marked_quantile, rolling_ols, when
from kimp.features.families.price import DAY, WINDOWS, half, masked_sums, mean_min, reg_min, std_min
from kimp.features.registry import Registry
from kimp.features.types import TIMEFRAMES

PREMIUMS = {"fx": ("p_fx", "premium_fx (USD/KRW based)"), "usdt": ("p_usdt", "premium_usdt (USDT/KRW based)")}
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_WINDOWS = {"1d": DAY, "7d": 7 * DAY}
AR_WINDOWS = {"4h": 14400, "1d": DAY, "3d": 3 * DAY, "7d": 7 * DAY}
VOLUME_RATIO_WINDOWS = {"1h": 3600, "4h": 14400, "1d": DAY}
P = ("premium",)


def add_premium(reg: Registry) -> None:
    for d, (c, words) in PREMIUMS.items():
        reg.add(
            f"prem_{d}",
            "premium",
            f"{words} of the kr venue, a fraction",
            lookback_s=0,
            sources=P,
            definition=d,
            make=lambda c=c: col(c),
        )
        for tf, sec in TIMEFRAMES.items():
            reg.add(
                f"prem_{d}_chg_{tf}",
                "premium",
                f"change of {words} over {tf} (percentage points / 100)",
                lookback_s=sec,
                sources=P,
                definition=d,
                timeframe=tf,
                make=lambda c=c, sec=sec: col(c) - col(c).shift(reg.bars(sec)),
            )
        reg.add(
            f"prem_{d}_btc_eth_spread",
            "premium",
            f"{words} of this coin minus the other coin's (BTC vs ETH; kr venue of each)",
            lookback_s=0,
            sources=P,
            definition=d,
            make=lambda c=c: col(c) - col(f"{c}_oth"),
        )
        for tf, sec in TIMEFRAMES.items():
            reg.add(
                f"prem_{d}_btc_eth_spread_chg_{tf}",
                "premium",
                f"change of the BTC-ETH {words} spread over {tf}",
                lookback_s=sec,
                sources=P,
                definition=d,
                timeframe=tf,
                make=lambda c=c, sec=sec: (col(c) - col(f"{c}_oth")).diff(reg.bars(sec)),
            )
        reg.add(
            f"prem_{d}_venue_spread",
            "premium",
            f"{words}: kr venue minus the other Korean venue "
            "(upbit vs bithumb; null when only one venue is present)",
            lookback_s=0,
            sources=P,
            definition=d,
            make=lambda c=c: col(c) - col(f"{c}_alt"),
        )
        reg.add(
            f"prem_{d}_venue_spread_chg_1h",
            "premium",
            f"1h change of the cross-venue {words} spread",
            lookback_s=3600,
            sources=P,
            definition=d,
            make=lambda c=c: (col(c) - col(f"{c}_alt")).diff(reg.bars(3600)),
        )
    reg.add(
        "prem_basis",
        "premium",
        "premium_usdt - premium_fx: the USDT premium over USD/KRW as it enters both definitions",
        lookback_s=0,
        sources=P,
        make=lambda: col("p_usdt") - col("p_fx"),
    )
    for tf, sec in TIMEFRAMES.items():
        reg.add(
            f"prem_basis_chg_{tf}",
            "premium",
            f"change of premium_usdt - premium_fx over {tf}",
            lookback_s=sec,
            sources=P,
            timeframe=tf,
            make=lambda sec=sec: (col("p_usdt") - col("p_fx")).diff(reg.bars(sec)),
        )
    reg.add(
        "usdt_krw_premium",
        "premium",
        "Upbit USDT/KRW / USD/KRW - 1: the dollar-stablecoin premium in Korea",
        lookback_s=0,
        sources=P,
        make=lambda: col("usdt_krw") / col("usdkrw") - 1,
    )
    for tf, sec in TIMEFRAMES.items():
        reg.add(
            f"fx_usdkrw_logret_{tf}",
            "premium",
            f"log change of USD/KRW (as published by the bar close) over {tf}",
            lookback_s=sec,
            sources=P,
            timeframe=tf,
            make=lambda sec=sec: (col("usdkrw") / col("usdkrw").shift(reg.bars(sec))).log(),
        )
        reg.add(
            f"fx_usdtkrw_logret_{tf}",
            "premium",
            f"log change of Upbit USDT/KRW over {tf}",
            lookback_s=sec,
            sources=P,
            timeframe=tf,
            make=lambda sec=sec: (col("usdt_krw") / col("usdt_krw").shift(reg.bars(sec))).log(),
        )
    reg.add(
        "fx_age_h",
        "premium",
        "hours since the USD/KRW value in use was published (staleness of the FX leg)",
        lookback_s=0,
        sources=P,
        make=lambda: (col("_close") - col("fx_pub")).dt.total_seconds().cast(pl.Float64) / 3600,
    )
    reg.add(
        "fx_fixing_dev",
        "premium",
        "USD/KRW in use / latest daily fixing (or daily close) - 1; null while the value in use is that "
        "fixing itself (a daily-only FX source: there is no deviation to measure)",
        lookback_s=0,
        sources=("premium", "fx"),
        make=lambda: when(col("fx_pub") != col("fx_fix_pub")).then(col("usdkrw") / col("fx_fix") - 1),
    )

    def usd_volume(prefix: str) -> Expr:
        return col(f"{prefix}_qv") / (col("usdkrw") if prefix == "kr" else 1.0)

    reg.add(
        "kr_bn_volume_ratio",
        "premium",
        "ln(kr quote volume in USD / Binance quote volume) of the bar",
        lookback_s=0,
        sources=("candles", "premium"),
        refresh="bar",  # reads bar volumes
        make=lambda: (usd_volume("kr") / usd_volume("bn")).log(),
    )
    for wl, sec in VOLUME_RATIO_WINDOWS.items():

        def ratio(sec: int = sec) -> Expr:
            kr, bn = masked_sums(usd_volume("kr"), usd_volume("bn"), reg.bars(sec))
            return (kr / bn).log()

        reg.add(
            f"kr_bn_volume_ratio_{wl}",
            "premium",
            f"ln(kr USD volume / Binance volume) summed over {wl} (bars with both)",
            lookback_s=sec,
            sources=("candles", "premium"),
            refresh="bar",
            window=wl,
            make=ratio,
        )


QUANTILE_STEP_S = 300


def quantile_helper(reg: Registry, c: str, q: float, sec: int) -> str:
    """Rolling quantile of ``c`` over ``sec`` seconds, sampled at 5-minute marks (a helper column).

    A rolling quantile costs O(n log w) per row; on 1-minute bars sampling the window at the bars that
    close on the UTC 5-minute grid is 5x cheaper and changes the estimate negligibly. The marks are
    aligned to the epoch, so a day's values do not depend on where a computation starts; the value of
    a mark is used from its close until the next mark (never before it is known).
    """
    iv = reg.interval_s
    assert iv is not None
    step = QUANTILE_STEP_S if iv < QUANTILE_STEP_S and QUANTILE_STEP_S % iv == 0 else iv
    w = reg.bars(sec) * iv // step  # window in marks
    hold = step // iv - 1

    def make() -> Expr:
        return marked_quantile(
            col("_close"), col(c), q=q, step_s=step, window=w, min_samples=half(w), hold=hold
        )

    return reg.helper(f"_q{int(q * 100):02d}_{c}_{sec}", make)


def _ar_slope(c: str, w: int) -> Expr:
    """OLS slope b of dp_t on p_(t-1) over w bars (pairs with both present), one numba pass."""
    prev = col(c).shift(1)
    return rolling_ols(prev, col(c) - prev, window=w, min_count=reg_min(w))


def add_mean_reversion(reg: Registry) -> None:
    def rolling_mean(c: str, w: int) -> str:
        return reg.helper(
            f"_mean_{c}_{w}", lambda: col(c).rolling_mean(window_size=w, min_samples=mean_min(w))
        )

    for d, (c, words) in PREMIUMS.items():
        for wl, sec in WINDOWS.items():

            def z(c: str = c, sec: int = sec) -> Expr:
                w = reg.bars(sec)
                sd = col(c).rolling_std(window_size=w, min_samples=std_min(w))
                return (col(c) - col(rolling_mean(c, w))) / sd

            reg.add(
                f"prem_{d}_z_{wl}",
                "mean_reversion",
                f"z-score of {words} over {wl}: (p - mean) / sd",
                lookback_s=sec,
                sources=P,
                definition=d,
                window=wl,
                make=z,
            )
            reg.add(
                f"prem_{d}_dev_mean_{wl}",
                "mean_reversion",
                f"{words} minus its {wl} mean",
                lookback_s=sec,
                sources=P,
                definition=d,
                window=wl,
                make=lambda c=c, sec=sec: col(c) - col(rolling_mean(c, reg.bars(sec))),
            )

            def range_pos(c: str = c, sec: int = sec) -> Expr:
                w = reg.bars(sec)
                hi = col(
                    reg.helper(
                        f"_max_{c}_{w}", lambda: col(c).rolling_max(window_size=w, min_samples=mean_min(w))
                    )
                )
                lo = col(
                    reg.helper(
                        f"_min_{c}_{w}", lambda: col(c).rolling_min(window_size=w, min_samples=mean_min(w))
                    )
                )
                return (
                    when(hi > lo).then((col(c) - lo) / (hi - lo)).otherwise(when(hi.is_not_null()).then(0.5))
                )

            reg.add(
                f"prem_{d}_range_pos_{wl}",
                "mean_reversion",
                f"position of {words} in its {wl} min-max range "
                "(0 = at the low, 1 = at the high, 0.5 when flat)",
                lookback_s=sec,
                sources=P,
                definition=d,
                window=wl,
                make=range_pos,
            )
        for wl, sec in QUANTILE_WINDOWS.items():
            for q in QUANTILES:
                reg.add(
                    f"prem_{d}_qdist{int(q * 100):02d}_{wl}",
                    "mean_reversion",
                    f"{words} minus its rolling {q:.2f} quantile over {wl}, the quantile taken over the values at "
                    f"{QUANTILE_STEP_S // 60}-minute marks (bar closes on the UTC 5-minute grid; every bar when bars "
                    "are longer) and held until the next mark",
                    lookback_s=sec + QUANTILE_STEP_S,
                    sources=P,
                    definition=d,
                    window=wl,
                    quantile=q,
                    make=lambda c=c, sec=sec, q=q: col(c) - col(quantile_helper(reg, c, q, sec)),
                )
        for wl, sec in AR_WINDOWS.items():

            def ar_coef(c: str = c, sec: int = sec) -> Expr:
                # OLS slope b of dp_t on p_(t-1) over the window: dp = a + b p_(t-1); AR(1) phi = 1 + b
                w = reg.bars(sec)
                return col(reg.helper(f"_ar_{c}_{w}", lambda: _ar_slope(c, w)))

            reg.add(
                f"prem_{d}_ar_slope_{wl}",
                "mean_reversion",
                f"mean-reversion speed of {words} over {wl}: OLS "
                "slope b of dp_t on p_(t-1) (negative = reverting)",
                lookback_s=sec,
                sources=P,
                definition=d,
                window=wl,
                make=ar_coef,
            )

            def half_life(c: str = c, sec: int = sec, f=ar_coef) -> Expr:
                b = f(c, sec)
                iv_h = (reg.interval_s or 0) / 3600
                return when((b < 0) & (b > -1)).then(-math.log(2) / (1 + b).log() * iv_h)

            reg.add(
                f"prem_{d}_half_life_{wl}",
                "mean_reversion",
                f"half-life in hours of {words} deviations over "
                f"{wl}: -ln 2 / ln(1 + b) bars (null when not reverting)",
                lookback_s=sec,
                sources=P,
                definition=d,
                window=wl,
                make=half_life,
            )
