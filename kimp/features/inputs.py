"""Input checks and the per-coin base frame: one row per bar on a regular grid, raw series as columns.

Rules (documented in the package docstring):
- The premium table is the base grid: its finest interval is the bar interval; per coin the grid runs
  from the coin's first premium bar to ``end`` without gaps (a missing bar is a row of nulls), so a
  window of N seconds is exactly N / interval rows.
- Non-finite input values (NaN, +-inf) become null (missing) and are counted in ``input_problems``;
  they never reach a feature as NaN.
- A missing table, or one that lacks required columns, makes its families unavailable (null columns,
  reason in ``unavailable``). A missing premium table is an error: there is no grid without it.
- Zero-volume candles are placeholders (no trade, stale price): their OHLC are treated as missing.
- Every as-of value is joined on the bar close ``ts + interval`` against the time it became known
  (``published_at``; snapshot or publication ``ts`` for order books and news), never on its ``ts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from kimp.errors import MarketDataError
from kimp.features.families.sentiment import BAR_COLUMNS as SENTIMENT_BAR_COLUMNS
from kimp.features.families.sentiment import bar_sums as sentiment_bar_sums
from kimp.features.types import TABLE_NAMES, FeatureConfig, FeatureInputs
from kimp.market_data.schemas import (
    BOOK_LEVELS,
    CANDLES,
    FX,
    MACRO,
    MACRO_SERIES,
    NEWS,
    NEWS_SENTIMENT,
    ONCHAIN,
    ORDERBOOK,
    PREMIUM,
)

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "premium": PREMIUM,
    "candles": CANDLES,
    "fx": FX,
    "orderbook": ORDERBOOK,
    "onchain": ONCHAIN,
    "macro": MACRO,
    "news": NEWS,
    "news_sentiment": NEWS_SENTIMENT,
}
# Columns a table must have for its families to be computed (others, e.g. quote_volume, are optional).
REQUIRED: dict[str, tuple[str, ...]] = {
    "premium": (
        "ts",
        "coin",
        "kr_venue",
        "interval_s",
        "premium_fx",
        "premium_usdt",
        "kr_close",
        "binance_close",
        "usdt_krw_close",
        "usdkrw",
        "fx_published_at",
        "stale",
    ),
    "candles": ("ts", "venue", "base", "quote", "interval_s", "open", "high", "low", "close", "volume"),
    "fx": ("series", "published_at", "close"),
    "orderbook": (
        "ts",
        "venue",
        "symbol",
        *[f"{s}_{w}_{i}" for s in ("bid", "ask") for w in ("px", "sz") for i in range(1, BOOK_LEVELS + 1)],
    ),
    "onchain": tuple(ONCHAIN),
    "macro": tuple(MACRO),
    "news": ("ts", "headline"),
    "news_sentiment": ("ts", "headline", "p_neg", "p_neu", "p_pos", "score"),
}
ONCHAIN_LEVELS = ("active_addresses", "hash_rate", "difficulty", "mvrv", "nvt")
ONCHAIN_FLOWS = ("exchange_inflow", "exchange_outflow", "whale_tx_count")
MACRO_MAX_AGE = timedelta(days=5)  # an older macro value is not "the latest" any more: null
FX_MAX_AGE = timedelta(days=5)
ONCHAIN_MAX_AGE = timedelta(hours=6)

# Lexicon for the interim news tone (until a sentiment model lands): word stems, lower case.
POSITIVE_WORDS = (
    "surge",
    "rally",
    "gain",
    "rise",
    "jump",
    "soar",
    "bull",
    "record",
    "high",
    "approve",
    "adopt",
    "inflow",
    "recover",
    "strong",
    "optimis",
    "upgrade",
    "boost",
    "climb",
)
NEGATIVE_WORDS = (
    "plunge",
    "crash",
    "drop",
    "fall",
    "slump",
    "bear",
    "low",
    "ban",
    "hack",
    "fraud",
    "outflow",
    "fear",
    "weak",
    "crackdown",
    "sell-off",
    "selloff",
    "lawsuit",
    "probe",
    "decline",
    "tumble",
    "risk",
    "warn",
)
COIN_WORDS = {"BTC": ("btc", "bitcoin"), "ETH": ("eth", "ethereum", "ether")}


def base_columns() -> list[str]:
    """Every raw-series column a family may read; absent inputs leave them null (never zero)."""
    cols = [
        "p_fx",
        "p_usdt",
        "usdt_krw",
        "usdkrw",
        "p_fx_alt",
        "p_usdt_alt",
        "p_fx_oth",
        "p_usdt_oth",
        "fx_fix",
    ]
    for prefix in ("kr", "bn"):
        cols += [f"{prefix}_{c}" for c in ("o", "h", "l", "c", "v", "qv")]
        book = ["spread", "imb1", "imb5", "imb10", "micro", "spread_mean", "imb1_mean"]
        book += [f"{s}sz{i}" for s in ("b", "a") for i in range(1, BOOK_LEVELS + 1)]
        cols += [f"{prefix}_ob_{c}" for c in book]
    cols += [f"oc_{c}" for c in (*ONCHAIN_LEVELS, *ONCHAIN_FLOWS)]
    for series in MACRO_SERIES:
        cols += [f"m_{series}", f"m_{series}_chg"]
    cols += ["n_count", "n_tone", "n_kimchi", "n_coin", "n_coin_tone"]
    cols += list(SENTIMENT_BAR_COLUMNS)
    return cols


def ensure_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the base columns an input did not provide, as nulls (the families read them as missing)."""
    missing = [c for c in base_columns() if c not in frame.columns]
    extra = [pl.lit(None, pl.Float64).alias(c) for c in missing]
    extra += [
        pl.lit(None, pl.Datetime("us", "UTC")).alias(c)
        for c in ("fx_pub", "fx_fix_pub")
        if c not in frame.columns
    ]
    extra += [
        pl.lit(None, pl.Datetime("us", "UTC")).alias(f"m_{s}_pub")
        for s in MACRO_SERIES
        if f"m_{s}_pub" not in frame.columns
    ]
    return frame.with_columns(extra) if extra else frame


@dataclass
class Prepared:
    """Checked, sanitized inputs and what could not be used."""

    tables: dict[str, pl.DataFrame | None]
    interval_s: int
    unusable: dict[str, str] = field(default_factory=dict)  # table -> why it cannot be used
    problems: list[str] = field(default_factory=list)
    _news_tone: pl.DataFrame | None = None

    def tone(self, end: datetime) -> pl.DataFrame | None:
        """Lexicon tone of every news item before ``end``, computed once for all coins."""
        news = self.tables["news"]
        if news is None:
            return None
        if self._news_tone is None:
            self._news_tone = news_tone(news.filter(pl.col("ts") < end))
        return self._news_tone


def _sanitize(name: str, frame: pl.DataFrame, problems: list[str]) -> pl.DataFrame:
    floats = [c for c, t in frame.schema.items() if t in (pl.Float32, pl.Float64)]
    if not floats or frame.height == 0:
        return frame
    counts = frame.select([(~pl.col(c).is_finite() & pl.col(c).is_not_null()).sum().alias(c) for c in floats])
    bad = {c: int(v) for c, v in counts.row(0, named=True).items() if v}
    if not bad:
        return frame
    problems.append(
        f"{name}: non-finite values treated as missing (null): "
        + ", ".join(f"{c}={n}" for c, n in sorted(bad.items()))
    )
    return frame.with_columns([pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in bad])


def prepare(
    inputs: FeatureInputs,
    *,
    start: datetime,
    end: datetime,
    config: FeatureConfig,
    interval_s: int | None = None,
) -> Prepared:
    """Validate every table against its schema, drop rows known after ``end``, null non-finite values.

    The bar interval is the premium table's finest; a caller that knows it (the streaming engine, which
    builds bars that may have no premium row yet) passes ``interval_s`` and may pass an empty premium.
    """
    partition = f"{start.isoformat()}..{end.isoformat()}"
    tables: dict[str, pl.DataFrame | None] = {}
    unusable: dict[str, str] = {}
    problems: list[str] = []
    for name in TABLE_NAMES:
        frame = inputs.table(name)
        if frame is None:
            unusable[name] = f"{name}: table not provided"
            tables[name] = None
            continue
        missing = [c for c in REQUIRED[name] if c not in frame.columns]
        if missing:
            unusable[name] = f"{name}: missing columns {missing}"
            tables[name] = None
            continue
        tables[name] = _sanitize(name, frame, problems)
    premium = tables["premium"]
    if premium is None:
        raise MarketDataError(
            source="features",
            partition=partition,
            problem=f"the premium table cannot be used ({unusable['premium']}); it is the base grid of "
            "every feature family, so nothing can be computed",
            expected=f"a PREMIUM table (kimp.premium.compute_premium) with columns {list(REQUIRED['premium'])}",
        )
    premium = premium.filter(pl.col("coin").is_in(config.coins) & (pl.col("ts") < end))
    if interval_s is not None:
        tables["premium"] = premium.filter(pl.col("interval_s") == interval_s)
        return Prepared(tables=tables, interval_s=interval_s, unusable=unusable, problems=problems)
    if premium.height == 0:
        raise MarketDataError(
            source="features",
            partition=partition,
            problem=f"the premium table has no rows for coins {list(config.coins)} before {end.isoformat()}",
            expected="premium rows (the base grid) for the requested coins and the window's look-back",
        )
    interval_s = int(premium["interval_s"].min())  # type: ignore[arg-type]
    tables["premium"] = premium.filter(pl.col("interval_s") == interval_s)
    return Prepared(tables=tables, interval_s=interval_s, unusable=unusable, problems=problems)


# --------------------------------------------------------------------------------------------- helpers
def bar_of(ts: pl.Expr, interval_s: int) -> pl.Expr:
    """Open time of the bar [open, close) that contains ``ts``.

    An event exactly at a bar's close goes to the next bar: it would be known in time for the earlier
    bar, but it is stored in the next day's partition when the close is midnight, and a day computed
    alone must equal the same day inside a longer run.
    """
    interval_us = interval_s * 1_000_000
    epoch = ts.dt.epoch("us") // interval_us * interval_us
    return pl.from_epoch(epoch, time_unit="us").dt.replace_time_zone("UTC")


def _asof(grid: pl.DataFrame, right: pl.DataFrame, on: str, tolerance: timedelta | None) -> pl.DataFrame:
    return grid.join_asof(
        right.sort(on), left_on="_close", right_on=on, strategy="backward", tolerance=tolerance
    ).drop(on)


def _candle_cols(
    candles: pl.DataFrame | None, venue: str, base: str, quote: str, interval_s: int, prefix: str
) -> pl.DataFrame | None:
    if candles is None:
        return None
    bars = candles.filter(
        (pl.col("venue") == venue)
        & (pl.col("base") == base)
        & (pl.col("quote") == quote)
        & (pl.col("interval_s") == interval_s)
    )
    if bars.height == 0:
        return None
    qv = pl.col("quote_volume") if "quote_volume" in bars.columns else pl.lit(None, pl.Float64)
    placeholder = pl.col("volume") == 0
    return (
        bars.sort("ts")
        .unique(subset=["ts"], keep="last", maintain_order=True)
        .select(
            "ts",
            *[
                pl.when(~placeholder).then(pl.col(c)).alias(f"{prefix}_{c[0]}")
                for c in ("open", "high", "low")
            ],
            pl.when(~placeholder).then(pl.col("close")).alias(f"_{prefix}_candle_c"),
            pl.col("volume").alias(f"{prefix}_v"),
            pl.coalesce(qv, pl.col("close") * pl.col("volume")).alias(f"{prefix}_qv"),
        )
    )


def _book_cols(
    orderbook: pl.DataFrame | None, venue: str, symbol: str, interval_s: int, max_age_s: int, prefix: str
) -> pl.DataFrame | None:
    """Order-book snapshots aggregated to bars in one group_by: last snapshot before the bar
    close (depth per level, spread, imbalance, microprice) plus bar means of spread and imbalance."""
    if orderbook is None:
        return None
    ob = orderbook.filter((pl.col("venue") == venue) & (pl.col("symbol") == symbol))
    if ob.height == 0:
        return None
    bid = [pl.col(f"bid_sz_{i}").fill_null(0.0) for i in range(1, BOOK_LEVELS + 1)]
    ask = [pl.col(f"ask_sz_{i}").fill_null(0.0) for i in range(1, BOOK_LEVELS + 1)]

    def imbalance(levels: int) -> pl.Expr:
        b = pl.sum_horizontal(bid[:levels])
        a = pl.sum_horizontal(ask[:levels])
        return (b - a) / (b + a)

    mid = (pl.col("bid_px_1") + pl.col("ask_px_1")) / 2
    micro = (pl.col("ask_px_1") * pl.col("bid_sz_1") + pl.col("bid_px_1") * pl.col("ask_sz_1")) / (
        pl.col("bid_sz_1") + pl.col("ask_sz_1")
    )
    snaps = ob.select(
        pl.col("ts").alias("_snap_ts"),
        bar_of(pl.col("ts"), interval_s).alias("ts"),
        ((pl.col("ask_px_1") - pl.col("bid_px_1")) / mid * 1e4).alias("spread"),
        imbalance(1).alias("imb1"),
        imbalance(5).alias("imb5"),
        imbalance(10).alias("imb10"),
        ((micro / mid - 1.0) * 1e4).alias("micro"),
        *[pl.col(f"bid_sz_{i}").alias(f"bsz{i}") for i in range(1, BOOK_LEVELS + 1)],
        *[pl.col(f"ask_sz_{i}").alias(f"asz{i}") for i in range(1, BOOK_LEVELS + 1)],
    ).sort("_snap_ts")
    last_cols = ["spread", "imb1", "imb5", "imb10", "micro"] + [
        f"{s}sz{i}" for s in ("b", "a") for i in range(1, BOOK_LEVELS + 1)
    ]
    # snapshots are sorted: the last one of each bar is where the next one falls in another bar (a
    # filter, much cheaper than a hash group_by with 25 "last" aggregations)
    next_bar = pl.col("ts").shift(-1)
    last = snaps.filter(next_bar.is_null() | (next_bar != pl.col("ts"))).select("ts", "_snap_ts", *last_cols)
    means = snaps.group_by("ts").agg(
        pl.col("spread").mean().alias("spread_mean"), pl.col("imb1").mean().alias("imb1_mean")
    )
    bars = last.join(means, on="ts", how="left")
    fresh = (pl.col("ts") + pl.duration(seconds=interval_s) - pl.col("_snap_ts")) <= pl.duration(
        seconds=max_age_s
    )
    value_cols = [*last_cols, "spread_mean", "imb1_mean"]
    return bars.select(
        "ts",
        *[pl.when(fresh).then(pl.col(c)).alias(f"{prefix}_ob_{c}") for c in value_cols[: len(last_cols)]],
        *[pl.col(c).alias(f"{prefix}_ob_{c}") for c in value_cols[len(last_cols) :]],
    )


def news_tone(news: pl.DataFrame) -> pl.DataFrame:
    """Per item: lexicon tone in [-1, 1] = (pos - neg) / (pos + neg), 0 without tone words; coin and
    kimchi-premium mentions. Words are counted in the lower-cased headline and text."""
    text = pl.concat_str(
        [pl.col("headline").fill_null(""), pl.col("text").fill_null("")]
        if "text" in news.columns
        else [pl.col("headline").fill_null("")],
        separator=" ",
    )
    text = text.str.to_lowercase()
    # counts are unsigned: cast before subtracting, or pos - neg wraps around (2**32 - 1 for one negative word)
    pos = pl.sum_horizontal([text.str.count_matches(rf"\b{w}", literal=False) for w in POSITIVE_WORDS]).cast(
        pl.Int64
    )
    neg = pl.sum_horizontal([text.str.count_matches(rf"\b{w}", literal=False) for w in NEGATIVE_WORDS]).cast(
        pl.Int64
    )
    out = news.select(
        "ts",
        pl.when(pos + neg > 0).then((pos - neg).cast(pl.Float64) / (pos + neg)).otherwise(0.0).alias("tone"),
        text.str.contains(r"kimchi|premium").alias("kimchi"),
        *[
            pl.any_horizontal([text.str.contains(rf"\b{w}\b") for w in words]).alias(f"mention_{coin}")
            for coin, words in COIN_WORDS.items()
        ],
    )
    return out


def kr_venues(premium: pl.DataFrame, coin: str, config: FeatureConfig) -> tuple[str, str | None, str | None]:
    """(kr venue, other Korean venue, the partner coin's venue) of ``coin``: per coin the first venue of
    ``config.kr_venues`` with premium rows is the "kr" venue, the next one feeds the cross-venue spread."""
    own = premium.filter(pl.col("coin") == coin)
    venues = [v for v in config.kr_venues if own.filter(pl.col("kr_venue") == v).height > 0]
    if not venues:
        venues = [config.kr_venues[0]]
    partner = "ETH" if coin != "ETH" else "BTC"
    partner_venue = next(
        (
            v
            for v in config.kr_venues
            if premium.filter((pl.col("coin") == partner) & (pl.col("kr_venue") == v)).height
        ),
        None,
    )
    return venues[0], (venues[1] if len(venues) > 1 else None), partner_venue


def base_frame(
    prep: Prepared,
    coin: str,
    *,
    end: datetime,
    config: FeatureConfig,
    venues: tuple[str, str | None, str | None] | None = None,
    grid_start: datetime | None = None,
    history_start: datetime | None = None,
) -> tuple[pl.DataFrame, str]:
    """The regular bar grid of one coin with every raw series the families read, and its kr venue.

    By default the grid runs from the coin's first premium bar to ``end``, the venues come from
    ``kr_venues`` and history (``_hist_s``) is measured from the grid's first bar (``grid_start`` and
    ``history_start`` override them for a grid that continues an earlier one).

    The streaming engine warms up with this function; the row of each new bar it builds from records with
    the same rules (kimp.streaming.rows, no frame per bar): a rule changed here must change there too,
    which tests/test_streaming_engine.py (base rows, column by column) and the parity tests catch.
    """
    iv = prep.interval_s
    premium = prep.tables["premium"]
    assert premium is not None
    kr_venue, alt_venue, partner_venue = venues or kr_venues(premium, coin, config)
    first = grid_start
    if first is None:
        own = premium.filter(pl.col("coin") == coin)
        first = own["ts"].min() if own.height else None  # type: ignore[assignment]
    if first is None:
        grid = pl.DataFrame({"ts": []}, schema={"ts": pl.Datetime("us", "UTC")})
    else:
        grid = pl.DataFrame(
            {
                "ts": pl.datetime_range(
                    first, end, interval=f"{iv}s", closed="left", time_unit="us", time_zone="UTC", eager=True
                )
            }
        )
    origin = pl.lit(history_start, pl.Datetime("us", "UTC")) if history_start else pl.col("ts").first()
    grid = grid.with_columns(
        _close=pl.col("ts") + pl.duration(seconds=iv),
        # history span: from the first bar's close to this bar's close (what a look-back is measured in)
        _hist_s=(pl.col("ts") - origin).dt.total_seconds(),
    )

    def prem(venue: str | None, c: str, suffix: str) -> pl.DataFrame:
        rows = premium.filter((pl.col("coin") == c) & (pl.col("kr_venue") == (venue or "")))
        rows = rows.sort("ts").unique(subset=["ts"], keep="last", maintain_order=True)
        return rows.select(
            "ts", pl.col("premium_fx").alias(f"p_fx{suffix}"), pl.col("premium_usdt").alias(f"p_usdt{suffix}")
        )

    main = (
        premium.filter((pl.col("coin") == coin) & (pl.col("kr_venue") == kr_venue))
        .sort("ts")
        .unique(subset=["ts"], keep="last", maintain_order=True)
    )
    frame = grid.join(
        main.select(
            "ts",
            p_fx="premium_fx",
            p_usdt="premium_usdt",
            _pkr=pl.when(~pl.col("stale")).then(pl.col("kr_close")),
            _pbn=pl.when(~pl.col("stale")).then(pl.col("binance_close")),
            usdt_krw="usdt_krw_close",
            usdkrw="usdkrw",
            fx_pub="fx_published_at",
        ),
        on="ts",
        how="left",
    )
    frame = frame.join(prem(alt_venue, coin, "_alt"), on="ts", how="left")
    partner = "ETH" if coin != "ETH" else "BTC"
    frame = frame.join(prem(partner_venue, partner, "_oth"), on="ts", how="left")

    # Each leg's close comes from its own candles (nulled on its own zero-volume bars), so that a bar
    # missing on one venue leaves the other venue's indicators intact; the premium row's close (the same
    # candle close, nulled when either leg is a placeholder, absent when the Korean bar is) is the
    # fallback where the candles table lacks the leg. OHLV come from the candles table.
    candles = prep.tables["candles"]
    for prefix, venue, quote in (("kr", kr_venue, "KRW"), ("bn", "binance", "USDT")):
        cols = _candle_cols(candles, venue, coin, quote, iv, prefix)
        if cols is not None:
            frame = frame.join(cols, on="ts", how="left")
        premium_close = f"_p{prefix}"
        if cols is not None:
            frame = frame.with_columns(pl.coalesce(f"_{prefix}_candle_c", premium_close).alias(f"{prefix}_c"))
            frame = frame.drop(f"_{prefix}_candle_c", premium_close)
        else:
            frame = frame.rename({premium_close: f"{prefix}_c"})

    book = prep.tables["orderbook"]
    for prefix, venue, symbol in (("kr", kr_venue, f"{coin}/KRW"), ("bn", "binance", f"{coin}/USDT")):
        cols = _book_cols(book, venue, symbol, iv, config.orderbook_max_age_s, prefix)
        if cols is not None:
            frame = frame.join(cols, on="ts", how="left")

    fx = prep.tables["fx"]
    if fx is not None:
        fixing = fx.filter(pl.col("series").is_in(["fixing", "daily_close"]) & pl.col("close").is_not_null())
        fixing = (
            fixing.select(
                _fx_pub=pl.col("published_at"), fx_fix=pl.col("close"), fx_fix_pub=pl.col("published_at")
            )
            .sort("_fx_pub")
            .unique(subset=["_fx_pub"], keep="last", maintain_order=True)
        )
        frame = _asof(frame, fixing, "_fx_pub", FX_MAX_AGE)

    onchain = prep.tables["onchain"]
    if onchain is not None and onchain.filter(pl.col("coin") == coin).height:
        oc = onchain.filter(pl.col("coin") == coin).sort("published_at")
        levels = oc.select(
            _oc_pub="published_at", **{f"oc_{c}": pl.col(c).cast(pl.Float64) for c in ONCHAIN_LEVELS}
        )
        levels = levels.unique(subset=["_oc_pub"], keep="last", maintain_order=True)
        frame = _asof(frame, levels, "_oc_pub", ONCHAIN_MAX_AGE)
        flows = oc.group_by(bar_of(pl.col("published_at"), iv).alias("ts")).agg(
            *[pl.col(c).cast(pl.Float64).sum().alias(f"oc_{c}") for c in ONCHAIN_FLOWS]
        )
        frame = frame.join(flows, on="ts", how="left").with_columns(
            *[pl.col(f"oc_{c}").fill_null(0.0) for c in ONCHAIN_FLOWS]
        )

    macro = prep.tables["macro"]
    if macro is not None and macro.height:
        for series in MACRO_SERIES:
            rows = macro.filter((pl.col("series") == series) & pl.col("value").is_not_null()).sort(
                "published_at"
            )
            rows = rows.unique(subset=["published_at"], keep="last", maintain_order=True)
            prev_ok = (pl.col("published_at") - pl.col("published_at").shift(1)) <= MACRO_MAX_AGE
            rows = rows.select(
                pl.col("published_at").alias(f"_m_{series}"),
                pl.col("value").alias(f"m_{series}"),
                pl.when(prev_ok)
                .then((pl.col("value") / pl.col("value").shift(1)).log())
                .alias(f"m_{series}_chg"),
                pl.col("published_at").alias(f"m_{series}_pub"),
            )
            frame = _asof(frame, rows, f"_m_{series}", MACRO_MAX_AGE)

    tone = prep.tone(end)
    if tone is not None:
        per_bar = tone.group_by(bar_of(pl.col("ts"), iv).alias("ts")).agg(
            n_count=pl.len().cast(pl.Float64),
            n_tone=pl.col("tone").sum(),
            n_kimchi=pl.col("kimchi").sum().cast(pl.Float64),
            n_coin=pl.col(f"mention_{coin}").sum().cast(pl.Float64) if coin in COIN_WORDS else pl.lit(0.0),
            n_coin_tone=(pl.col("tone") * pl.col(f"mention_{coin}")).sum()
            if coin in COIN_WORDS
            else pl.lit(0.0),
        )
        frame = frame.join(per_bar, on="ts", how="left").with_columns(
            *[pl.col(c).fill_null(0.0) for c in ("n_count", "n_tone", "n_kimchi", "n_coin", "n_coin_tone")]
        )

    scored = prep.tables["news_sentiment"]
    if scored is not None:
        sums = sentiment_bar_sums(scored.filter(pl.col("ts") < end), iv, coin)
        frame = frame.join(sums, on="ts", how="left").with_columns(
            *[pl.col(c).fill_null(0.0) for c in SENTIMENT_BAR_COLUMNS]
        )
    return frame.sort("ts"), kr_venue
