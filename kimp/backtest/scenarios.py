"""Market scenarios (PRD 5.2) as deterministic, seeded transforms of a day's market.

Each transform returns a new :class:`Market` whose prices, premium, volumes and books stay mutually
consistent: the Binance price path is transformed first, the premium next, and the Korean price is
rebuilt as ``(1 + premium) x binance x conversion rate``; book levels move with their leg's price
(scaled around the mid) and their sizes scale with liquidity.

- ``normal``: the market as it is.
- ``high_volatility``: log returns of the Binance price x3 plus seeded noise of the same size,
  premium deviations from its day mean x2.5, spreads x2.
- ``flash_crash``: at a seeded bar in the middle 60% of the day, Binance falls 12% and the Korean
  price 18% over 5 bars (the premium drops about 7 pp), then both recover linearly over 60 bars;
  volumes x5 and book depth x0.3, spreads x5 during the crash.
- ``low_liquidity``: volumes and book sizes x0.1, spreads x3 (so slippage and impact grow).
"""

from __future__ import annotations

import numpy as np

from kimp.backtest.market import Book, Market

SCENARIOS: tuple[str, ...] = ("normal", "high_volatility", "flash_crash", "low_liquidity")


def _bar_of(book: Book, market: Market) -> np.ndarray:
    """Bar index each snapshot falls in (clipped to the market's bars)."""
    step = market.interval_s * 1_000_000
    return np.clip((book.ts - market.ts[0]) // step, 0, market.n - 1)


def _move_book(
    book: Book | None, market: Market, ratio: np.ndarray, spread_x: np.ndarray, size_x: np.ndarray
) -> Book | None:
    """Scale a book's prices by the per-bar price ratio, widen around the mid, scale sizes."""
    if book is None or book.n == 0:
        return book
    k = _bar_of(book, market)
    mid = 0.5 * (book.bid_px[:, :1] + book.ask_px[:, :1])
    r = ratio[k][:, None]
    w = spread_x[k][:, None]
    s = size_x[k][:, None]
    new_mid = mid * r
    return Book(
        ts=book.ts,
        bid_px=new_mid + (book.bid_px * r - new_mid) * w,
        bid_sz=book.bid_sz * s,
        ask_px=new_mid + (book.ask_px * r - new_mid) * w,
        ask_sz=book.ask_sz * s,
    )


def _rebuild(
    market: Market,
    name: str,
    bn: np.ndarray,
    premium_dev_x: float | np.ndarray,
    kr_extra: np.ndarray,
    volume_x: np.ndarray,
    spread_x: np.ndarray,
    size_x: np.ndarray,
) -> Market:
    known = np.isfinite(market.premium)
    implied = market.kr_close / (market.bn_close * market.conv) - 1.0  # defined on every bar, also stale ones
    center = float(np.mean(implied[known])) if known.any() else float(np.mean(implied))
    prem = center + (implied - center) * premium_dev_x
    kr = (1.0 + prem) * bn * market.conv * kr_extra
    new_prem = np.where(known, kr / (bn * market.conv) - 1.0, np.nan)
    return market.replace(
        scenario=name,
        kr_close=kr,
        bn_close=bn,
        premium=new_prem,
        kr_volume=market.kr_volume * volume_x,
        bn_volume=market.bn_volume * volume_x,
        kr_book=_move_book(market.kr_book, market, kr / market.kr_close, spread_x, size_x),
        bn_book=_move_book(market.bn_book, market, bn / market.bn_close, spread_x, size_x),
    )


def apply_scenario(market: Market, name: str, *, seed: int = 7) -> Market:
    """``market`` under scenario ``name`` (one of SCENARIOS); the same seed gives the same market."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: expected one of {SCENARIOS}")
    n = market.n
    ones = np.ones(n)
    if name == "normal":
        return market.replace(scenario="normal")
    rng = np.random.default_rng(seed)
    if name == "high_volatility":
        logp = np.log(market.bn_close)
        ret = np.diff(logp, prepend=logp[0])
        sd = float(ret[1:].std()) if n > 2 else 0.0
        noise = rng.normal(0.0, sd, n)
        noise[0] = 0.0
        bn = market.bn_close[0] * np.exp(np.cumsum(3.0 * ret + noise))
        return _rebuild(market, name, bn, 2.5, ones, ones, 2.0 * ones, ones)
    if name == "flash_crash":
        start = int(rng.integers(int(0.2 * n), max(int(0.8 * n), int(0.2 * n) + 1))) if n > 10 else 0
        fall, recover = 5, 60
        depth = np.zeros(n)  # 0 -> 1 over the fall, back to 0 over the recovery
        for j in range(n):
            d = j - start
            if 0 <= d < fall:
                depth[j] = (d + 1) / fall
            elif fall <= d < fall + recover:
                depth[j] = 1.0 - (d - fall + 1) / recover
        bn = market.bn_close * (1.0 - 0.12 * depth)
        kr_extra = (1.0 - 0.18 * depth) / (1.0 - 0.12 * depth)
        stress = depth > 0
        return _rebuild(
            market,
            name,
            bn,
            1.0,
            kr_extra,
            np.where(stress, 5.0, 1.0),
            np.where(stress, 5.0, 1.0),
            np.where(stress, 0.3, 1.0),
        )
    # low_liquidity
    return _rebuild(market, name, market.bn_close.copy(), 1.0, ones, 0.1 * ones, 3.0 * ones, 0.1 * ones)
