"""Template-generated news headlines whose tone follows the regime and the market's recent moves.

Each headline's tone = regime bias + recent BTC move (z-score) + recent premium change + noise, using
only the state at or before its publication minute. Positive templates use words from POSITIVE_WORDS,
negative ones from NEGATIVE_WORDS and neutral ones neither, so a lexicon (``headline_tone``) recovers the
tone: a ground truth for sentiment features and models.
"""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl

from kimp.market_data.schemas import UTC_TS
from kimp.market_data.simulated.anchors import anchor_path
from kimp.market_data.simulated.intraday import DayPath
from kimp.market_data.simulated.params import SimParams
from kimp.market_data.simulated.timegrid import MINUTES, S_DAY_NEWS, news_activity, rng

SOURCES: tuple[str, ...] = ("Yonhap", "CoinDesk Korea", "Bloomberg", "Reuters", "The Block")
_SOURCE_WEIGHTS = np.array([0.3, 0.25, 0.15, 0.15, 0.15])

POSITIVE_WORDS: frozenset[str] = frozenset(
    {"climbs", "rallies", "surges", "soars", "widens", "bullish", "jumps", "record", "frenzy", "recovers",
     "gains", "optimism", "upbeat", "strengthens"}
)  # fmt: skip
NEGATIVE_WORDS: frozenset[str] = frozenset(
    {"slides", "drops", "shrinks", "retreat", "weakens", "warn", "losses", "falls", "sell-off", "slump",
     "fear", "plunges", "discount", "cautious"}
)  # fmt: skip

# {btc_krw}, {btc_usd}, {eth_usd}, {prem}, {fx} are filled from the simulated state.
_POSITIVE = (
    "Bitcoin climbs to {btc_krw} won on Upbit as Korean buyers return",
    "Kimchi premium widens to {prem}% amid retail frenzy on Upbit",
    "Ethereum rallies toward {eth_usd} dollars as Korean volume surges",
    "Upbit trading volume jumps as demand for won-market crypto soars",
    "Analysts turn bullish on Bitcoin after strong exchange demand",
    "Won strengthens to {fx} per dollar; Bithumb and Upbit see gains",
)
_NEGATIVE = (
    "Bitcoin slides to {btc_krw} won as risk appetite fades in Seoul",
    "Kimchi premium shrinks to {prem}% as Korean traders retreat",
    "Ethereum drops below {eth_usd} dollars amid crypto sell-off",
    "Won weakens to {fx} per dollar, Upbit prices slump",
    "Regulators warn investors over crypto losses as Upbit volume falls",
    "Bitcoin plunges on Bithumb as fear spreads among retail traders",
)
_NEUTRAL = (
    "Bitcoin trades near {btc_usd} dollars as traders await US data",
    "Kimchi premium holds around {prem}% on Upbit",
    "Financial Services Commission reviews crypto exchange rules",
    "Won trades at {fx} per dollar in Seoul",
    "Ethereum steady at {eth_usd} dollars as network activity holds",
    "Upbit and Bithumb list new won-market trading pairs",
)
_TEXT = {
    1: "Market sentiment among Korean investors is upbeat.",
    -1: "Market participants remain cautious.",
    0: "Market participants are watching the won and the premium.",
}

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def headline_tone(headline: str) -> int:
    """+1 / -1 / 0 by the simulator's own lexicon (positive minus negative word count, signed)."""
    words = _WORD.findall(headline.lower())
    score = sum(w in POSITIVE_WORDS for w in words) - sum(w in NEGATIVE_WORDS for w in words)
    return int(np.sign(score))


def news_frame(day: DayPath, seed: int, p: SimParams, day_start_us: int) -> pl.DataFrame:
    a = anchor_path(seed, p)
    i = day.index
    g = rng(seed, S_DAY_NEWS, i)
    n = int(g.poisson(p.news_rate[day.regime]))
    prob = news_activity() / news_activity().sum()
    minutes = np.sort(g.choice(MINUTES, size=n, p=prob))
    seconds = g.integers(0, 60, n)
    # Signal: BTC move and premium change since the previous day's 00:00 (24-48 h), at the minute.
    prev = max(i - 1, 0)
    span_var = float(a.btc_day_var[prev] + a.btc_day_var[i])
    move_z = (day.x_btc[minutes] - a.x_btc[prev]) / math.sqrt(span_var)
    dprem = day.p_btc[minutes] - a.premium[prev]
    tone_score = (
        p.news_regime_tone[day.regime]
        + p.news_move_weight * move_z
        + p.news_premium_weight * dprem
        + p.news_tone_noise_sd * g.standard_normal(n)
    )
    th = p.news_tone_threshold
    tones = np.where(tone_score > th, 1, np.where(tone_score < -th, -1, 0))
    pick = g.integers(0, len(_POSITIVE), n)
    src = g.choice(len(SOURCES), size=n, p=_SOURCE_WEIGHTS)
    with_text = g.random(n) < p.news_text_share
    headlines: list[str] = []
    texts: list[str | None] = []
    for k in range(n):
        m = int(minutes[k])
        fx = math.exp(day.f[m])
        values = {
            "btc_krw": f"{day.prices['upbit BTC/KRW'][m]:,.0f}",
            "btc_usd": f"{math.exp(day.x_btc[m]):,.0f}",
            "eth_usd": f"{math.exp(day.x_eth[m]):,.0f}",
            "prem": f"{100 * day.p_btc[m]:.1f}",
            "fx": f"{fx:,.1f}",
        }
        template = {1: _POSITIVE, -1: _NEGATIVE, 0: _NEUTRAL}[int(tones[k])][int(pick[k])]
        headlines.append(template.format(**values))
        if with_text[k]:
            texts.append(
                f"{SOURCES[src[k]]}: BTC {values['btc_usd']} USDT on Binance, {values['btc_krw']} KRW on Upbit; "
                f"kimchi premium {values['prem']}%, USD/KRW {values['fx']}. {_TEXT[int(tones[k])]}"
            )
        else:
            texts.append(None)
    ts_us = day_start_us + minutes.astype(np.int64) * 60_000_000 + seconds.astype(np.int64) * 1_000_000
    return pl.DataFrame(
        {
            "ts": pl.Series(ts_us, dtype=pl.Int64).cast(UTC_TS),
            "source": pl.Series([SOURCES[s] for s in src], dtype=pl.String),
            "headline": pl.Series(headlines, dtype=pl.String),
            "text": pl.Series(texts, dtype=pl.String),
        }
    )
