"""The agent's observation: per-bar features known at the bar's close, computed once per episode.

Everything that does not depend on the agent's own actions is computed here, over the episode's bars
preceded by their history (the bars before the episode: warm-up, never the future), as one (n, F)
matrix; the environment appends the state it owns (position, target, kill switch, PnL) each step.

Built-in features (PRD 2.2; the technical indicators are of the premium, the series the spread trade
trades), each scale-free and clipped to +-``EnvConfig.obs_clip``:

- ``premium_level``: the premium x 10 (0.05 = 5% -> 0.5).
- ``premium_<w>m`` for each w of ``premium_minutes``: the premium's mean over the last w minutes (at
  least the latest bar) minus its mean over the last ``norm_minutes``, in units of its std over those
  ``norm_minutes`` (the "day scale", floored at 1e-5).
- ``kr_volume_change``, ``bn_volume_change``: ln(volume of the bar / mean volume of the previous
  ``volume_minutes``), 0 where unknown.
- ``kr_book_imbalance``, ``bn_book_imbalance``: (bid size - ask size) / (bid + ask) over the 10 levels of
  the latest snapshot at or before the bar close; 0 without books (or with ``EnvConfig.use_books`` off).
- ``premium_rsi``: Wilder's RSI of the premium over ``rsi_bars``, as (RSI - 50) / 50.
- ``premium_macd``, ``premium_macd_signal``, ``premium_macd_hist``: EMA(fast) - EMA(slow) of the premium,
  its EMA(signal) and their difference, over the day scale.
- ``premium_bb_pctb``: (premium - its ``bollinger_bars`` mean) / (2 x its std over them) (the Bollinger
  %B, centred: +-1 at the bands); ``premium_bb_width``: that std over the day scale.
- ``bars_left``: bars before the next forced close (end of the UTC day, or of the episode), per day of
  bars (1 at the start of a day, 0 at its last bar).
- ``round_trip_cost``: the taker fees of a round trip of the traded legs, in percent (Bithumb's 0.25%
  against Upbit's 0.05%: an agent trained on both venues knows which one it trades).

The premium is carried forward over bars where it is unknown (stale or filled bars); before the first
known premium every premium feature is 0.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from numba import njit

from kimp.backtest.market import DAY_US, US, Book, Market
from kimp.rl.config import EnvConfig

DYNAMIC = ("position", "target", "halted", "episode_pnl")  # appended by the environment each step
SD_FLOOR = 1e-5  # the premium's day-scale std floor (0.001 pp)


def feature_names(cfg: EnvConfig) -> list[str]:
    """Names of the observation's columns, in order (static features, catalog features, dynamic state)."""
    return [*builtin_names(cfg), *cfg.catalog_features, *DYNAMIC]


def builtin_names(cfg: EnvConfig) -> list[str]:
    return [
        "premium_level",
        *(f"premium_{w}m" for w in cfg.premium_minutes),
        "kr_volume_change",
        "bn_volume_change",
        "kr_book_imbalance",
        "bn_book_imbalance",
        "premium_rsi",
        "premium_macd",
        "premium_macd_signal",
        "premium_macd_hist",
        "premium_bb_pctb",
        "premium_bb_width",
        "bars_left",
        "round_trip_cost",
    ]


def _bars(minutes: int, interval_s: int) -> int:
    """A window of ``minutes`` in bars (at least one)."""
    return max(1, -(-minutes * 60 // interval_s))


@njit(cache=True, nogil=True)
def _rolling_mean_std(x, w):
    """Mean and sample std of the last ``w`` values (fewer at the start), shifted sums for precision."""
    n = x.shape[0]
    mean = np.zeros(n)
    sd = np.zeros(n)
    if n == 0:
        return mean, sd
    shift = x[0]
    s1 = 0.0
    s2 = 0.0
    for i in range(n):
        d = x[i] - shift
        s1 += d
        s2 += d * d
        if i >= w:
            o = x[i - w] - shift
            s1 -= o
            s2 -= o * o
        m = min(i + 1, w)
        mean[i] = shift + s1 / m
        if m > 1:
            var = (s2 - s1 * s1 / m) / (m - 1)
            sd[i] = math.sqrt(var) if var > 0 else 0.0
    return mean, sd


@njit(cache=True, nogil=True)
def _clip(v, c):
    if v != v:
        return 0.0
    return -c if v < -c else (c if v > c else v)


@njit(cache=True, nogil=True)
def premium_features(premium, kr_vol, bn_vol, windows, norm_w, vol_w, rsi_n, fast, slow, signal, bb_n, clip):
    """The premium and volume features of every bar (columns in :func:`builtin_names` order, without the
    book imbalance, bars_left and cost columns, which :func:`static_features` fills). Only bars 0..i are read
    for row i."""
    n = premium.shape[0]
    nw = windows.shape[0]
    out = np.zeros((n, 1 + nw + 2 + 2 + 1 + 3 + 2 + 2))
    # Carry the premium forward; rows before the first known value stay 0.
    p = np.empty(n)
    known = np.zeros(n, dtype=np.bool_)
    last = np.nan
    for i in range(n):
        if premium[i] == premium[i]:
            last = premium[i]
        p[i] = last
        known[i] = last == last
    first = 0
    while first < n and not known[first]:
        first += 1
    if first == n:
        return out
    q = p[first:]
    day_mean, day_sd = _rolling_mean_std(q, norm_w)
    bb_mean, bb_sd = _rolling_mean_std(q, bb_n)
    means = np.empty((nw, q.shape[0]))
    for k in range(nw):
        means[k], _ = _rolling_mean_std(q, windows[k])
    a_fast = 2.0 / (fast + 1.0)
    a_slow = 2.0 / (slow + 1.0)
    a_sig = 2.0 / (signal + 1.0)
    a_rsi = 1.0 / rsi_n
    ema_f = q[0]
    ema_s = q[0]
    sig = 0.0
    gain = 0.0
    loss = 0.0
    c_rsi = 1 + nw + 4
    for j in range(q.shape[0]):
        i = first + j
        x = q[j]
        scale = max(day_sd[j], SD_FLOOR)
        out[i, 0] = _clip(10.0 * x, clip)
        for k in range(nw):
            out[i, 1 + k] = _clip((means[k, j] - day_mean[j]) / scale, clip)
        if j > 0:
            d = x - q[j - 1]
            gain += a_rsi * (max(d, 0.0) - gain)
            loss += a_rsi * (max(-d, 0.0) - loss)
            ema_f += a_fast * (x - ema_f)
            ema_s += a_slow * (x - ema_s)
        total = gain + loss
        out[i, c_rsi] = 0.0 if total <= 0 else (gain - loss) / total  # (RSI - 50) / 50
        macd = ema_f - ema_s
        sig = macd if j == 0 else sig + a_sig * (macd - sig)
        out[i, c_rsi + 1] = _clip(macd / scale, clip)
        out[i, c_rsi + 2] = _clip(sig / scale, clip)
        out[i, c_rsi + 3] = _clip((macd - sig) / scale, clip)
        out[i, c_rsi + 4] = _clip((x - bb_mean[j]) / (2.0 * bb_sd[j]), clip) if bb_sd[j] > 0 else 0.0
        out[i, c_rsi + 5] = _clip(bb_sd[j] / scale, clip)
    # Volume change: this bar against the mean of the previous vol_w bars (unknown volumes skipped).
    for leg in range(2):
        v = kr_vol if leg == 0 else bn_vol
        col = 1 + nw + leg
        s = 0.0
        m = 0
        for i in range(n):
            if i > vol_w:
                o = v[i - vol_w - 1]
                if o == o:
                    s -= o
                    m -= 1
            if i > 0:
                o = v[i - 1]
                if o == o:
                    s += o
                    m += 1
            x = v[i]
            if x == x and m > 0 and s > 0:
                out[i, col] = _clip(math.log((x + 1e-12) / (s / m)), clip)
    return out


def book_imbalance(book: Book | None, close_ts: np.ndarray) -> np.ndarray:
    """(bid - ask) / (bid + ask) size over the 10 levels of the latest snapshot at or before each close."""
    out = np.zeros(close_ts.shape[0])
    if book is None or book.n == 0:
        return out
    at = np.searchsorted(book.ts, close_ts, side="right") - 1
    ok = at >= 0
    bid = np.nansum(book.bid_sz, axis=1)[at[ok]]
    ask = np.nansum(book.ask_sz, axis=1)[at[ok]]
    total = bid + ask
    out[ok] = np.where(total > 0, (bid - ask) / np.where(total > 0, total, 1.0), 0.0)
    return out


def bars_left(market: Market) -> np.ndarray:
    """Bars before the next forced close (the last bar of each UTC day and of the market), per day."""
    n = market.n
    forced = market.day_end.copy()
    forced[-1] = True
    ends = np.flatnonzero(forced)
    nxt = ends[np.searchsorted(ends, np.arange(n))]
    return (nxt - np.arange(n)) / (DAY_US / (market.interval_s * US))


def static_features(
    market: Market,
    history: Market | None,
    cfg: EnvConfig,
    catalog: pl.DataFrame | None = None,
    catalog_stats: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    round_trip_cost: float = 0.0,
) -> np.ndarray:
    """The (n, F) matrix of the episode's features that do not depend on the agent (see the module
    docstring). ``history``: the bars before the market (same coin, venue and interval), for warm-up.
    ``round_trip_cost``: the round trip's taker fees as a fraction (kimp.rl.episodes computes it from the
    backtest's parameters).
    ``catalog``: feature rows (ts, coin, columns named in ``cfg.catalog_features``), standardized with
    ``catalog_stats`` (mean, std) and clipped; missing values are 0."""
    premium, kr_vol, bn_vol = market.premium, market.kr_volume, market.bn_volume
    h = 0
    if history is not None and history.n:
        if history.interval_s != market.interval_s or history.ts[-1] >= market.ts[0]:
            raise ValueError(
                f"history for {market.coin}/{market.kr_venue} {market.partition} must be earlier bars of the "
                f"same interval ({history.interval_s} s vs {market.interval_s} s, last {history.ts[-1]} "
                f"vs first {market.ts[0]})"
            )
        h = history.n
        premium = np.concatenate([history.premium, premium])
        kr_vol = np.concatenate([history.kr_volume, kr_vol])
        bn_vol = np.concatenate([history.bn_volume, bn_vol])
    windows = np.array([_bars(w, market.interval_s) for w in cfg.premium_minutes], dtype=np.int64)
    fast, slow, signal = cfg.macd_bars
    base = premium_features(
        np.ascontiguousarray(premium, dtype=np.float64),
        np.ascontiguousarray(kr_vol, dtype=np.float64),
        np.ascontiguousarray(bn_vol, dtype=np.float64),
        windows,
        _bars(cfg.norm_minutes, market.interval_s),
        _bars(cfg.volume_minutes, market.interval_s),
        cfg.rsi_bars,
        fast,
        slow,
        signal,
        cfg.bollinger_bars,
        cfg.obs_clip,
    )[h:]
    nw = windows.shape[0]
    close_ts = market.ts_close
    if cfg.use_books:
        base[:, 1 + nw + 2] = book_imbalance(market.kr_book, close_ts)
        base[:, 1 + nw + 3] = book_imbalance(market.bn_book, close_ts)
    base[:, -2] = bars_left(market)
    base[:, -1] = 100.0 * round_trip_cost
    if not cfg.catalog_features:
        return np.ascontiguousarray(base)
    extra = catalog_matrix(market, catalog, cfg.catalog_features)
    if catalog_stats is not None:
        mean, sd = catalog_stats
        extra = (extra - mean) / np.where(sd > 0, sd, 1.0)
    extra = np.clip(np.nan_to_num(extra, nan=0.0, posinf=0.0, neginf=0.0), -cfg.obs_clip, cfg.obs_clip)
    return np.ascontiguousarray(np.hstack([base, extra]))


def catalog_matrix(market: Market, catalog: pl.DataFrame | None, names: tuple[str, ...]) -> np.ndarray:
    """The named catalog features at the market's bars (NaN where a bar has no row), unscaled."""
    if catalog is None or catalog.height == 0:
        raise ValueError(
            f"catalog features {list(names)} are configured but no feature rows were given for "
            f"{market.coin} {market.partition}"
        )
    missing = [c for c in names if c not in catalog.columns]
    if missing:
        raise ValueError(
            f"catalog features {missing} are not in the feature table (names in docs/features.md)"
        )
    rows = catalog.filter(pl.col("coin") == market.coin) if "coin" in catalog.columns else catalog
    rows = rows.select(
        pl.col("ts").dt.cast_time_unit("us").dt.replace_time_zone("UTC").cast(pl.Int64).alias("_t"),
        *[pl.col(c).cast(pl.Float64) for c in names],
    ).unique(subset="_t", keep="last")
    grid = pl.DataFrame({"_t": market.ts})
    joined = grid.join(rows, on="_t", how="left", maintain_order="left")
    return joined.select(list(names)).fill_null(np.nan).to_numpy().astype(np.float64)
