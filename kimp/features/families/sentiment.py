"""The ``sentiment`` family: model-scored headlines (the ``news_sentiment`` table) as look-ahead-free features.

Each headline carries ``p_neg``, ``p_neu``, ``p_pos`` and ``score = p_pos - p_neg`` from the sentiment model
(kimp.sentiment). A headline counts for the bar whose open..close contains its publication time and is
first used at that bar's close, like every news item (kimp.features.inputs.bar_of). Per bar the base frame
holds sums (count, score, squared score, negatives, mentions); the features are window sums of those:

- count, mean score, dispersion (standard deviation of scores) and share of negative headlines (the model's
  most likely class is negative) over 1 h, 4 h and 1 d;
- surprise: the window's mean score minus the trailing 7-day mean (0 without headlines in the window);
- mentions of Korea (korea/korean/seoul), Upbit and Bithumb over 1 d, and the mean score of those headlines;
- per coin: headlines that name the coin (bitcoin/btc, ethereum/eth/ether) over 4 h and 1 d, and their mean.
A mean over a window without headlines is 0 (neutral), a count is 0; a missing table leaves every column
null and flagged (``unavailable``), never zero.
"""

from __future__ import annotations

import polars as pl

from kimp.features.expr import Expr, col, when
from kimp.features.families.price import DAY, half
from kimp.features.registry import Registry

WINDOWS = {"1h": 3600, "4h": 14400, "1d": DAY}
COIN_WINDOWS = {"4h": 14400, "1d": DAY}
TRAILING_S = 7 * DAY
KOREA_PATTERNS = {"korea": r"\bkorea|\bseoul", "upbit": r"\bupbit", "bithumb": r"\bbithumb"}
COIN_PATTERNS = {"BTC": r"\bbitcoin|\bbtc\b", "ETH": r"\bethereum|\beth\b|\bether\b"}
SOURCE = ("news_sentiment",)

# per-bar sums the base frame carries (kimp.features.inputs.base_frame); 0 in bars without headlines
BAR_COLUMNS = (
    "s_n",
    "s_sum",
    "s_sq",
    "s_neg",
    "s_korea",
    "s_upbit",
    "s_bithumb",
    "s_kr_n",
    "s_kr_sum",
    "s_coin_n",
    "s_coin_sum",
)


def bar_sums(scored: pl.DataFrame, interval_s: int, coin: str) -> pl.DataFrame:
    """Per bar (``ts`` = bar open): the sums in BAR_COLUMNS for one coin's grid."""
    from kimp.features.inputs import bar_of

    text = pl.col("headline").fill_null("").str.to_lowercase()
    mentions = {k: text.str.contains(p) for k, p in KOREA_PATTERNS.items()}
    korean = mentions["korea"] | mentions["upbit"] | mentions["bithumb"]
    names_coin = text.str.contains(COIN_PATTERNS[coin]) if coin in COIN_PATTERNS else pl.lit(False)
    score = pl.col("score").cast(pl.Float64)
    negative = (pl.col("p_neg") >= pl.col("p_neu")) & (pl.col("p_neg") >= pl.col("p_pos"))
    usable = scored.filter(pl.col("score").is_not_null())
    return usable.group_by(bar_of(pl.col("ts"), interval_s).alias("ts")).agg(
        s_n=pl.len().cast(pl.Float64),
        s_sum=score.sum(),
        s_sq=(score * score).sum(),
        s_neg=negative.sum().cast(pl.Float64),
        **{f"s_{k}": m.sum().cast(pl.Float64) for k, m in mentions.items()},
        s_kr_n=korean.sum().cast(pl.Float64),
        s_kr_sum=(score * korean.cast(pl.Float64)).sum(),
        s_coin_n=names_coin.sum().cast(pl.Float64),
        s_coin_sum=(score * names_coin.cast(pl.Float64)).sum(),
    )


def _sum(reg: Registry, name: str, sec: int) -> Expr:
    w = reg.bars(sec)
    return col(name).rolling_sum(window_size=w, min_samples=half(w))


def _ratio(num: Expr, den: Expr) -> Expr:
    """num / den where there are headlines, 0 where there are none, null where the window is unknown."""
    return when(den > 0).then(num / den).otherwise(when(den.is_not_null()).then(0.0))


def add_sentiment(reg: Registry) -> None:
    for wl, sec in WINDOWS.items():
        reg.add(
            f"sent_count_{wl}",
            "sentiment",
            f"number of scored headlines published in the last {wl}",
            lookback_s=sec,
            sources=SOURCE,
            window=wl,
            make=lambda sec=sec: _sum(reg, "s_n", sec),
        )
        reg.add(
            f"sent_mean_{wl}",
            "sentiment",
            f"mean model score (p_pos - p_neg) of headlines in the last {wl}; 0 without headlines",
            lookback_s=sec,
            sources=SOURCE,
            window=wl,
            make=lambda sec=sec: _ratio(_sum(reg, "s_sum", sec), _sum(reg, "s_n", sec)),
        )

        def dispersion(sec: int = sec) -> Expr:
            n = _sum(reg, "s_n", sec)
            mean = _ratio(_sum(reg, "s_sum", sec), n)
            mean_sq = _ratio(_sum(reg, "s_sq", sec), n)
            var = mean_sq - mean * mean
            # a variance below the rounding of the window sums (1e-12 of the mean square) is 0: those sums
            # round differently depending on where a computation starts (batch day, live stream), and the
            # square root would magnify that noise to 1e-6 of a score
            return when(var > 1e-12 * mean_sq).then(var).when(var.is_not_null()).then(0.0).sqrt()

        reg.add(
            f"sent_std_{wl}",
            "sentiment",
            f"standard deviation of headline scores in the last {wl} (0 with fewer than two headlines)",
            lookback_s=sec,
            sources=SOURCE,
            window=wl,
            make=dispersion,
        )
        reg.add(
            f"sent_neg_share_{wl}",
            "sentiment",
            f"share of headlines in the last {wl} whose most likely class is negative; 0 without headlines",
            lookback_s=sec,
            sources=SOURCE,
            window=wl,
            make=lambda sec=sec: _ratio(_sum(reg, "s_neg", sec), _sum(reg, "s_n", sec)),
        )

        def surprise(sec: int = sec) -> Expr:
            n = _sum(reg, "s_n", sec)
            mean = _ratio(_sum(reg, "s_sum", sec), n)
            trailing = _ratio(_sum(reg, "s_sum", TRAILING_S), _sum(reg, "s_n", TRAILING_S))
            return when(n > 0).then(mean - trailing).otherwise(when(n.is_not_null()).then(0.0))

        reg.add(
            f"sent_surprise_{wl}",
            "sentiment",
            f"mean score of the last {wl} minus the trailing 7-day mean score (0 without headlines in {wl})",
            lookback_s=TRAILING_S,
            sources=SOURCE,
            window=wl,
            make=surprise,
        )
    for what, words in (("korea", "Korea, Korean or Seoul"), ("upbit", "Upbit"), ("bithumb", "Bithumb")):
        reg.add(
            f"sent_{what}_count_1d",
            "sentiment",
            f"headlines in the last day that mention {words}",
            lookback_s=DAY,
            sources=SOURCE,
            make=lambda what=what: _sum(reg, f"s_{what}", DAY),
        )
    reg.add(
        "sent_kr_mean_1d",
        "sentiment",
        "mean score of the last day's headlines that mention Korea, Upbit or Bithumb; 0 without",
        lookback_s=DAY,
        sources=SOURCE,
        make=lambda: _ratio(_sum(reg, "s_kr_sum", DAY), _sum(reg, "s_kr_n", DAY)),
    )
    for wl, sec in COIN_WINDOWS.items():
        reg.add(
            f"sent_coin_count_{wl}",
            "sentiment",
            f"headlines in the last {wl} that name this coin (Bitcoin/BTC, Ethereum/ETH/Ether)",
            lookback_s=sec,
            sources=SOURCE,
            window=wl,
            make=lambda sec=sec: _sum(reg, "s_coin_n", sec),
        )
        reg.add(
            f"sent_coin_mean_{wl}",
            "sentiment",
            f"mean score of the last {wl}'s headlines that name this coin; 0 without",
            lookback_s=sec,
            sources=SOURCE,
            window=wl,
            make=lambda sec=sec: _ratio(_sum(reg, "s_coin_sum", sec), _sum(reg, "s_coin_n", sec)),
        )
