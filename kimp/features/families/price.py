"""Price families on the Korean-venue close ("kr", KRW) and the Binance close ("bn", USDT).

returns, volatility (realized, Parkinson, GARCH(1,1)), momentum, technicals (RSI, MACD, Bollinger,
stochastic, Ichimoku) and VWAP/TWAP. A timeframe's indicator is computed on the base grid with every
period stretched to the timeframe (e.g. RSI(14) on 1h = Cutler RSI of 1-hour price changes averaged over
the last 14 hours of bars), so it is defined on every bar and needs exactly its declared history.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from kimp.features.expr import Expr, col, ewm, garch, ndtr, when
from kimp.features.garch import garch_conditional_variance, refit_blocks
from kimp.features.registry import NotRepresentable, Registry, duration_label
from kimp.features.types import TIMEFRAMES

DAY = 86_400
WINDOWS: dict[str, int] = {"15m": 900, "1h": 3600, "4h": 14400, "1d": DAY, "3d": 3 * DAY, "7d": 7 * DAY}
# A leg's close comes from its candles (the premium row's close where the candles lack the leg): see
# kimp.features.inputs.base_frame. So a price feature reads both tables, and its look-back applies to both.
CLOSE_SOURCES = ("premium", "candles")
PRICE_SERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "kr": ("Korean-venue KRW close", CLOSE_SOURCES),
    "bn": ("Binance USDT close", CLOSE_SOURCES),
}
OHLC_SOURCES = ("premium", "candles")


def half(w: int) -> int:
    """Minimum valid samples in a window of w rows: half of it (missing bars do not void a window)."""
    return max(1, w // 2)


def mean_min(w: int) -> int:
    """Minimum samples for a window statistic compared with the current bar (a mean, a range, a VWAP):
    over a one-bar window it is the bar itself and the feature constant, so such a window is not
    representable."""
    if w < 2:
        raise NotRepresentable(
            "a window of one bar holds only the bar itself (the feature would be constant)"
        )
    return half(w)


def masked_sums(num: Expr, den: Expr, w: int) -> tuple[Expr, Expr]:
    """Rolling sums of a ratio's numerator and denominator over the same bars: those where both are
    present (a bar missing from one sum must not stay in the other). The missing-bar rule: a window
    computes on its valid bars when at least half of them are present."""
    valid = num.is_not_null() & den.is_not_null()
    return (
        when(valid).then(num).rolling_sum(window_size=w, min_samples=half(w)),
        when(valid).then(den).rolling_sum(window_size=w, min_samples=half(w)),
    )


def std_min(w: int) -> int:
    """Minimum samples for a dispersion over w rows; a one-row window has none (not representable)."""
    if w < 2:
        raise NotRepresentable(f"a dispersion needs a window of at least 2 bars, got {w}")
    return max(2, half(w))


def reg_min(w: int) -> int:
    """Minimum samples for a rolling regression slope over w rows."""
    if w < 3:
        raise NotRepresentable(f"a regression needs a window of at least 3 bars, got {w}")
    return max(3, half(w))


def log_ret1(reg: Registry, series: str) -> str:
    return reg.helper(f"_lr1_{series}", lambda: (col(f"{series}_c") / col(f"{series}_c").shift(1)).log())


def daily_scale(reg: Registry) -> float:
    assert reg.interval_s is not None
    return math.sqrt(DAY / reg.interval_s)


def add_returns(reg: Registry) -> None:
    for s, (what, sources) in PRICE_SERIES.items():
        for tf, sec in TIMEFRAMES.items():
            reg.add(
                f"{s}_ret_{tf}",
                "returns",
                f"simple return of the {what} over {tf}: c_t / c_(t-{tf}) - 1",
                lookback_s=sec,
                sources=sources,
                timeframe=tf,
                make=lambda s=s, sec=sec: col(f"{s}_c") / col(f"{s}_c").shift(reg.bars(sec)) - 1.0,
            )
            reg.add(
                f"{s}_logret_{tf}",
                "returns",
                f"log return of the {what} over {tf}: ln(c_t / c_(t-{tf}))",
                lookback_s=sec,
                sources=sources,
                timeframe=tf,
                make=lambda s=s, sec=sec: (col(f"{s}_c") / col(f"{s}_c").shift(reg.bars(sec))).log(),
            )


def add_volatility(reg: Registry) -> None:
    series = {
        **{s: (f"1-bar log returns of the {w}", src) for s, (w, src) in PRICE_SERIES.items()},
        "pfx": ("1-bar changes of premium_fx", ("premium",)),
    }
    for s, (what, sources) in series.items():
        for wl, sec in WINDOWS.items():

            def make(s: str = s, sec: int = sec) -> Expr:
                x = col(log_ret1(reg, s)) if s != "pfx" else col("p_fx").diff()
                w = reg.bars(sec)
                return x.rolling_std(window_size=w, min_samples=std_min(w)) * daily_scale(reg)

            reg.add(
                f"{s}_rv_{wl}",
                "volatility",
                f"realized volatility: std of {what} over {wl}, scaled to one day (x sqrt(bars per day))",
                lookback_s=sec,
                sources=sources,
                window=wl,
                make=make,
            )
    for s, (what, _) in PRICE_SERIES.items():
        for wl, sec in WINDOWS.items():

            def make_pk(s: str = s, sec: int = sec) -> Expr:
                w = reg.bars(sec)
                hl2 = (col(f"{s}_h") / col(f"{s}_l")).log() ** 2
                return (
                    hl2.rolling_mean(window_size=w, min_samples=half(w)) / (4 * math.log(2))
                ).sqrt() * daily_scale(reg)

            reg.add(
                f"{s}_parkinson_{wl}",
                "volatility",
                f"Parkinson high-low volatility of the {what} over "
                f"{wl}: sqrt(mean(ln(h/l)^2) / (4 ln 2)), scaled to one day",
                lookback_s=sec,
                sources=("candles",),
                window=wl,
                make=make_pk,
            )


def _garch_arrays(reg: Registry, s: str, ts_us: np.ndarray, r: np.ndarray) -> dict[str, np.ndarray]:
    """Conditional variance, persistence a+b and unconditional variance per row, computed once per
    series and coin (three helper columns read the same result; a lock keeps parallel readers from
    fitting twice)."""
    cfg = reg.config
    with reg.lock:
        if s not in reg.cache:
            assert reg.interval_s is not None
            s2, params = garch_conditional_variance(
                ts_us,
                r,
                interval_s=reg.interval_s,
                fit_days=cfg.garch_fit_days,
                refit_days=cfg.garch_refit_days,
                window_days=cfg.garch_window_days,
                min_obs=cfg.garch_min_obs,
                fitted=reg.garch_fitted.setdefault(s, {}),
            )
            block_start, lo, hi = refit_blocks(ts_us, cfg.garch_refit_days)
            pers = np.full(r.size, np.nan)
            var = np.full(r.size, np.nan)
            for b0, a, z in zip(block_start, lo, hi, strict=True):
                p = params.get(int(b0))
                if p is not None:
                    pers[a:z] = p.alpha + p.beta
                    var[a:z] = p.variance
            reg.cache[s] = {"s2": s2, "pers": pers, "var": var}
        return reg.cache[s]


def add_garch(reg: Registry) -> None:
    cfg = reg.config
    lookback = (cfg.garch_fit_days + cfg.garch_refit_days) * DAY
    series = {
        "kr": ("kr 1-bar log return", CLOSE_SOURCES),
        "bn": ("bn 1-bar log return", CLOSE_SOURCES),
        "pfx": ("1-bar change of premium_fx", ("premium",)),
    }
    params = dict(
        fit_days=cfg.garch_fit_days, refit_days=cfg.garch_refit_days, window_days=cfg.garch_window_days
    )

    def r_expr(s: str) -> Expr:
        return col(log_ret1(reg, s)) if s != "pfx" else col("p_fx").diff()

    def garch_col(s: str, what: str) -> str:
        def make() -> Expr:
            def fn(batch: pl.Series) -> pl.Series:
                ts_us = batch.struct.field("ts").dt.epoch("us").to_numpy()
                r = batch.struct.field("r").fill_null(np.nan).to_numpy().astype(np.float64)
                return pl.Series(_garch_arrays(reg, s, ts_us, r)[what])

            return garch(col("ts"), r_expr(s), output=what, series=s, batch=fn)

        return reg.helper(f"_garch_{what}_{s}", make)

    for s, (what, sources) in series.items():
        reg.add(
            f"{s}_garch_vol",
            "volatility",
            f"GARCH(1,1) conditional sd of the {what} for this bar "
            "(forecast from returns up to the previous bar; parameters fitted on the fit window before the "
            "refit block, filter restarted window_days back)",
            lookback_s=lookback,
            sources=sources,
            model="garch11",
            **params,
            make=lambda s=s: col(garch_col(s, "s2")).sqrt(),
        )
        reg.add(
            f"{s}_garch_z",
            "volatility",
            f"standardized {what}: r_t / GARCH sd",
            lookback_s=lookback,
            sources=sources,
            model="garch11",
            **params,
            make=lambda s=s: r_expr(s) / col(garch_col(s, "s2")).sqrt(),
        )
        reg.add(
            f"{s}_garch_persistence",
            "volatility",
            f"GARCH(1,1) persistence alpha + beta of the {what} (parameters of this bar's refit block)",
            lookback_s=lookback,
            sources=sources,
            model="garch11",
            **params,
            make=lambda s=s: col(garch_col(s, "pers")),
        )
        for h_label, h_sec in (("1h", 3600), ("1d", DAY)):

            def fc(s: str = s, h_sec: int = h_sec) -> Expr:
                h = reg.bars(h_sec)
                s2, p, v = col(garch_col(s, "s2")), col(garch_col(s, "pers")), col(garch_col(s, "var"))
                # sum_{k<h} E[s2_{t+k}] = h v + (s2_t - v) (1 - p^h) / (1 - p)
                return (h * v + (s2 - v) * (1 - p.pow(h)) / (1 - p)).clip(lower_bound=0).sqrt()

            reg.add(
                f"{s}_garch_fc_{h_label}",
                "volatility",
                f"GARCH(1,1) {h_label} volatility forecast of the "
                f"{what}: sqrt(h v + (s2_t - v)(1 - p^h)/(1 - p)), h bars, v unconditional variance, p = a + b",
                lookback_s=lookback,
                sources=sources,
                model="garch11",
                horizon=h_label,
                **params,
                make=fc,
            )


def add_momentum(reg: Registry) -> None:
    for s, (what, sources) in PRICE_SERIES.items():
        for wl, sec in WINDOWS.items():

            def sma_dev(s: str = s, sec: int = sec) -> Expr:
                w = reg.bars(sec)
                return (
                    col(f"{s}_c") / col(f"{s}_c").rolling_mean(window_size=w, min_samples=mean_min(w)) - 1.0
                )

            reg.add(
                f"{s}_sma_dev_{wl}",
                "momentum",
                f"{what} relative to its {wl} simple moving average: c/SMA - 1",
                lookback_s=sec,
                sources=sources,
                window=wl,
                make=sma_dev,
            )

            def up_frac(s: str = s, sec: int = sec) -> Expr:
                w = reg.bars(sec)
                r = col(log_ret1(reg, s))
                return (
                    when(r.is_not_null())
                    .then((r > 0).cast(pl.Float64))
                    .rolling_mean(window_size=w, min_samples=half(w))
                )

            reg.add(
                f"{s}_up_frac_{wl}",
                "momentum",
                f"fraction of bars with a positive {what} change over {wl}",
                lookback_s=sec,
                sources=sources,
                window=wl,
                make=up_frac,
            )

            def tstat(s: str = s, sec: int = sec) -> Expr:
                w = reg.bars(sec)
                r = col(log_ret1(reg, s))
                n = r.is_not_null().cast(pl.Float64).rolling_sum(window_size=w)  # the returns in the window
                return r.rolling_sum(window_size=w, min_samples=half(w)) / (
                    r.rolling_std(window_size=w, min_samples=std_min(w)) * n.sqrt()
                )

            reg.add(
                f"{s}_mom_t_{wl}",
                "momentum",
                f"time-series momentum of the {what}: sum of 1-bar log returns "
                f"over {wl} / (their sd x sqrt(n)), n the returns present",
                lookback_s=sec,
                sources=sources,
                window=wl,
                make=tstat,
            )


TECH_SERIES: dict[str, tuple[str, str, str, str, tuple[str, ...], bool]] = {
    # name: (close, high, low, words, sources, is_price)
    "kr": ("kr_c", "kr_h", "kr_l", "Korean-venue KRW price", CLOSE_SOURCES, True),
    "bn": ("bn_c", "bn_h", "bn_l", "Binance USDT price", CLOSE_SOURCES, True),
    "pfx": ("p_fx", "p_fx", "p_fx", "premium_fx", ("premium",), False),
}


def ema_helper(reg: Registry, src: str, span: int, tag: str) -> str:
    """Windowed EMA of ``src`` over ``span`` bars (truncated at two spans), a helper column."""
    return reg.helper(
        f"_ema_{tag}_{span}", lambda: ewm(col(src), alpha=2.0 / (span + 1), window=2 * span, min_count=span)
    )


def macd_line_helper(reg: Registry, c: str, tsec: int, is_price: bool) -> str:
    """MACD line of ``c`` on a timeframe of ``tsec`` seconds: relative to the slow EMA for prices (so
    KRW and USDT MACDs share a scale), in the series' own units for the premium.

    Module-level with every input an argument: the feature makers run after the registration loop, and a
    closure defined in that loop would see the loop's last series (the bug this replaced)."""
    fast, slow, _ = reg.config.macd

    def make() -> Expr:
        k = reg.bars(tsec)
        f_, s_ = col(ema_helper(reg, c, fast * k, c)), col(ema_helper(reg, c, slow * k, c))
        return (f_ - s_) / s_ if is_price else f_ - s_

    return reg.helper(f"_macd_{c}_{tsec}", make)


def macd_signal_helper(reg: Registry, c: str, tsec: int, is_price: bool) -> str:
    sig = reg.config.macd[2]
    return ema_helper(reg, macd_line_helper(reg, c, tsec, is_price), sig * reg.bars(tsec), f"sig_{c}_{tsec}")


def add_technicals(reg: Registry) -> None:
    cfg = reg.config
    fast, slow, sig = cfg.macd
    bb_n, bb_k = cfg.bollinger
    st_n, st_d = cfg.stochastic
    ich_t, ich_k, ich_b = cfg.ichimoku
    for s, (c, h, lo, words, sources, is_price) in TECH_SERIES.items():
        hl_sources = ("premium", "candles") if is_price else sources
        for tf, tsec in TIMEFRAMES.items():
            for n in cfg.rsi_periods:

                def rsi(c: str = c, tsec: int = tsec, n: int = n) -> Expr:
                    k = reg.bars(tsec)
                    d = col(c) - col(c).shift(k)
                    w = n * k
                    up = col(
                        reg.helper(
                            f"_up_{c}_{k}_{w}",
                            lambda: d.clip(lower_bound=0).rolling_mean(window_size=w, min_samples=half(w)),
                        )
                    )
                    dn = col(
                        reg.helper(
                            f"_dn_{c}_{k}_{w}",
                            lambda: (-d).clip(lower_bound=0).rolling_mean(window_size=w, min_samples=half(w)),
                        )
                    )
                    return (
                        when(up + dn > 0)
                        .then(100.0 * up / (up + dn))
                        .otherwise(when((up + dn).is_not_null()).then(50.0))
                    )

                reg.add(
                    f"{s}_rsi{n}_{tf}",
                    "rsi",
                    f"RSI({n}) of the {words} on {tf} changes (Cutler: 100 x mean "
                    f"gain / (mean gain + mean loss) of {tf} changes over {n} x {tf}; 50 when flat)",
                    lookback_s=(n + 1) * tsec,
                    sources=sources,
                    period=n,
                    timeframe=tf,
                    make=rsi,
                )

            def macd_line(c: str = c, tsec: int = tsec, is_price: bool = is_price) -> str:
                return macd_line_helper(reg, c, tsec, is_price)

            def signal(c: str = c, tsec: int = tsec, is_price: bool = is_price) -> str:
                return macd_signal_helper(reg, c, tsec, is_price)

            lb = (2 * slow + 2 * sig) * tsec
            unit = "relative to the slow EMA" if is_price else "in premium units"
            common = dict(lookback_s=lb, sources=sources, fast=fast, slow=slow, signal=sig, timeframe=tf)
            reg.add(
                f"{s}_macd_{tf}",
                "macd",
                f"MACD line of the {words} on {tf}: EMA({fast}) - EMA({slow}) of "
                f"{tf} periods, {unit}; EMAs are normalized exponential means truncated at 2 spans",
                make=lambda f=macd_line: col(f()),
                **common,
            )
            reg.add(
                f"{s}_macd_signal_{tf}",
                "macd",
                f"MACD signal of the {words} on {tf}: EMA({sig}) of the MACD line",
                make=lambda f=signal: col(f()),
                **common,
            )
            reg.add(
                f"{s}_macd_hist_{tf}",
                "macd",
                f"MACD histogram of the {words} on {tf}: line - signal",
                make=lambda f=macd_line, g=signal: col(f()) - col(g()),
                **common,
            )

            def bands(c: str = c, tsec: int = tsec) -> tuple[Expr, Expr]:
                w = bb_n * reg.bars(tsec)
                return (
                    col(
                        reg.helper(
                            f"_mean_{c}_{w}", lambda: col(c).rolling_mean(window_size=w, min_samples=half(w))
                        )
                    ),
                    col(
                        reg.helper(
                            f"_sd0_{c}_{w}",
                            lambda: col(c).rolling_std(window_size=w, min_samples=std_min(w), ddof=0),
                        )
                    ),
                )

            bb_common = dict(lookback_s=bb_n * tsec, sources=sources, period=bb_n, width=bb_k, timeframe=tf)
            reg.add(
                f"{s}_bb_pctb_{tf}",
                "bollinger",
                f"Bollinger %B of the {words} on {tf}: (c - (m - {bb_k}sd)) / "
                f"(2 x {bb_k}sd), m and sd over {bb_n} x {tf}",
                make=lambda c=c, tsec=tsec: (
                    (col(c) - bands(c, tsec)[0] + bb_k * bands(c, tsec)[1]) / (2 * bb_k * bands(c, tsec)[1])
                ),
                **bb_common,
            )
            reg.add(
                f"{s}_bb_width_{tf}",
                "bollinger",
                f"Bollinger bandwidth of the {words} on {tf}: 2 x {bb_k}sd"
                + (" / m" if is_price else " (premium units)"),
                make=lambda c=c, tsec=tsec, p=is_price: (
                    2 * bb_k * bands(c, tsec)[1] / (bands(c, tsec)[0] if p else 1.0)
                ),
                **bb_common,
            )

            def stoch_k(c: str = c, h: str = h, lo: str = lo, tsec: int = tsec) -> str:
                def make() -> Expr:
                    w = st_n * reg.bars(tsec)
                    hh = col(
                        reg.helper(
                            f"_max_{h}_{w}", lambda: col(h).rolling_max(window_size=w, min_samples=half(w))
                        )
                    )
                    ll = col(
                        reg.helper(
                            f"_min_{lo}_{w}", lambda: col(lo).rolling_min(window_size=w, min_samples=half(w))
                        )
                    )
                    return (
                        when(hh > ll)
                        .then(100.0 * (col(c) - ll) / (hh - ll))
                        .otherwise(when(hh.is_not_null()).then(50.0))
                    )

                return reg.helper(f"_stk_{c}_{tsec}", make)

            st_common = dict(sources=hl_sources, period=st_n, smooth=st_d, timeframe=tf)
            reg.add(
                f"{s}_stoch_k_{tf}",
                "stochastic",
                f"stochastic %K of the {words} on {tf}: 100 (c - LL)/(HH - LL) "
                f"over {st_n} x {tf} (50 when HH = LL)",
                lookback_s=st_n * tsec,
                make=lambda f=stoch_k: col(f()),
                **st_common,
            )
            reg.add(
                f"{s}_stoch_d_{tf}",
                "stochastic",
                f"stochastic %D of the {words} on {tf}: mean of %K over {st_d} x {tf}",
                lookback_s=(st_n + st_d) * tsec,
                make=lambda f=stoch_k, tsec=tsec: col(f()).rolling_mean(
                    window_size=st_d * reg.bars(tsec), min_samples=half(st_d * reg.bars(tsec))
                ),
                **st_common,
            )

            if not is_price:
                continue

            def mid(h: str, lo: str, n: int, tsec: int) -> Expr:
                w = n * reg.bars(tsec)
                return col(
                    reg.helper(
                        f"_mid_{h}_{w}",
                        lambda: (
                            (
                                col(h).rolling_max(window_size=w, min_samples=half(w))
                                + col(lo).rolling_min(window_size=w, min_samples=half(w))
                            )
                            / 2
                        ),
                    )
                )

            def span_a(h: str = h, lo: str = lo, tsec: int = tsec) -> Expr:
                return col(
                    reg.helper(
                        f"_span_a_{h}_{tsec}",
                        lambda: ((mid(h, lo, ich_t, tsec) + mid(h, lo, ich_k, tsec)) / 2).shift(
                            ich_k * reg.bars(tsec)
                        ),
                    )
                )

            def span_b(h: str = h, lo: str = lo, tsec: int = tsec) -> Expr:
                return mid(h, lo, ich_b, tsec).shift(ich_k * reg.bars(tsec))

            ich = dict(
                sources=("premium", "candles"), tenkan=ich_t, kijun=ich_k, senkou_b=ich_b, timeframe=tf
            )
            reg.add(
                f"{s}_ichi_tenkan_{tf}",
                "ichimoku",
                f"close / Ichimoku tenkan-sen - 1 of the {words} on {tf} "
                f"(midpoint of the {ich_t}-period high-low range)",
                lookback_s=ich_t * tsec,
                make=lambda c=c, h=h, lo=lo, tsec=tsec: col(c) / mid(h, lo, ich_t, tsec) - 1,
                **ich,
            )
            reg.add(
                f"{s}_ichi_kijun_{tf}",
                "ichimoku",
                f"close / Ichimoku kijun-sen - 1 of the {words} on {tf} "
                f"(midpoint of the {ich_k}-period range)",
                lookback_s=ich_k * tsec,
                make=lambda c=c, h=h, lo=lo, tsec=tsec: col(c) / mid(h, lo, ich_k, tsec) - 1,
                **ich,
            )
            reg.add(
                f"{s}_ichi_span_a_{tf}",
                "ichimoku",
                f"close / senkou span A - 1 on {tf}: the span plotted at this "
                f"bar, i.e. (tenkan + kijun)/2 computed {ich_k} periods ago",
                lookback_s=2 * ich_k * tsec,
                make=lambda c=c, f=span_a: col(c) / f() - 1,
                **ich,
            )
            reg.add(
                f"{s}_ichi_span_b_{tf}",
                "ichimoku",
                f"close / senkou span B - 1 on {tf}: {ich_b}-period midpoint computed {ich_k} periods ago",
                lookback_s=(ich_b + ich_k) * tsec,
                make=lambda c=c, f=span_b: col(c) / f() - 1,
                **ich,
            )
            reg.add(
                f"{s}_ichi_cloud_{tf}",
                "ichimoku",
                f"Ichimoku cloud thickness on {tf}: (span A - span B) / close",
                lookback_s=(ich_b + ich_k) * tsec,
                make=lambda c=c, a=span_a, b=span_b: (a() - b()) / col(c),
                **ich,
            )
            reg.add(
                f"{s}_ichi_chikou_{tf}",
                "ichimoku",
                f"Ichimoku chikou as a feature on {tf}: close / close "
                f"{ich_k} periods ago - 1 (the lagging line compared where it is known)",
                lookback_s=ich_k * tsec,
                make=lambda c=c, tsec=tsec: col(c) / col(c).shift(ich_k * reg.bars(tsec)) - 1,
                **ich,
            )


VWAP_WINDOWS = {"15m": 900, "1h": 3600, "4h": 14400, "1d": DAY}


def add_vwap(reg: Registry) -> None:
    for s, (what, _) in PRICE_SERIES.items():
        typical = (col(f"{s}_h") + col(f"{s}_l") + col(f"{s}_c")) / 3
        for wl, sec in VWAP_WINDOWS.items():

            def vwap(s: str = s, sec: int = sec, tp: Expr = typical) -> Expr:
                w = reg.bars(sec)
                mean_min(w)
                v = col(f"{s}_v")

                def make() -> Expr:
                    # only bars with both a price and a volume; a window without volume divides by zero
                    # and the non-finite result becomes null
                    pv, vol = masked_sums(tp * v, v, w)
                    return pv / vol

                return col(reg.helper(f"_vwap_{s}_{w}", make))

            def twap(s: str = s, sec: int = sec, tp: Expr = typical) -> Expr:
                w = reg.bars(sec)
                return col(
                    reg.helper(
                        f"_twap_{s}_{w}", lambda: tp.rolling_mean(window_size=w, min_samples=mean_min(w))
                    )
                )

            common = dict(lookback_s=sec, sources=OHLC_SOURCES, window=wl)
            reg.add(
                f"{s}_vwap_dist_{wl}",
                "vwap",
                f"{what} / VWAP - 1 over {wl} (typical price (h+l+c)/3 weighted by volume, bars with both)",
                make=lambda s=s, f=vwap: col(f"{s}_c") / f() - 1,
                **common,
            )
            reg.add(
                f"{s}_twap_dist_{wl}",
                "vwap",
                f"{what} / TWAP - 1 over {wl} (mean typical price)",
                make=lambda s=s, f=twap: col(f"{s}_c") / f() - 1,
                **common,
            )
            reg.add(
                f"{s}_vwap_twap_{wl}",
                "vwap",
                f"VWAP / TWAP - 1 over {wl}: where volume traded within the range",
                make=lambda f=vwap, g=twap: f() / g() - 1,
                **common,
            )


def bvc_buy_fraction(reg: Registry, s: str) -> str:
    """Bulk volume classification: share of a bar's volume that was buyer-initiated, Phi(r / sd_1d)."""

    def make() -> Expr:
        w = reg.bars(DAY)
        r = col(log_ret1(reg, s))
        z = r / r.rolling_std(window_size=w, min_samples=std_min(w))
        return ndtr(z).fill_nan(None)

    return reg.helper(f"_bvc_{s}", make)


__all__ = [
    "DAY",
    "WINDOWS",
    "add_garch",
    "add_momentum",
    "add_returns",
    "add_technicals",
    "add_volatility",
    "add_vwap",
    "bvc_buy_fraction",
    "duration_label",
    "half",
    "log_ret1",
    "masked_sums",
    "mean_min",
]
