"""Direction labels: did the premium (or the price) go down, stay flat or go up over the horizon?

A row at bar open ``ts`` is labelled with the change from the close of bar ``ts`` to the close of the bar
that ends ``horizon`` later, i.e. the bar whose open is ``ts + horizon``. The join is made in TIME
(``ts + horizon``), never by shifting rows, so a gap in the data gives a null label instead of silently
comparing with a bar from another time. The label is known at the close of that future bar:
``label_known_at = ts + horizon + interval_s``; every honesty rule downstream is stated against it.

- premium target: change = premium[ts + h] - premium[ts] (fractions, so 0.003 = 0.3 pp) against the flat
  band ``config.flat_band`` (the round-trip cost: a smaller move does not pay the spread trade).
- price target: change = close[ts + h] / close[ts] - 1 on the Korean venue, same band as a return.

Every label row also carries ``change`` itself: the regression target (kimp.models.regression predicts it
in basis points); like the label it is known at ``label_known_at`` and is never a feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

import polars as pl

from kimp.errors import MarketDataError
from kimp.market_data.schemas import UTC_TS
from kimp.models.base import DOWN, FLAT, UP, WalkForwardConfig

Target = Literal["premium", "price"]

LABELS: dict[str, pl.DataType] = {
    "ts": UTC_TS,
    "coin": pl.String(),
    "horizon": pl.Int32(),  # minutes
    "label": pl.Int8(),  # 0 down, 1 flat, 2 up; null when the future bar is not in the data
    "label_known_at": UTC_TS,  # close of the future bar
    "change": pl.Float64(),  # the move itself (premium: fraction, 0.003 = 0.3 pp; price: return)
}

LAST_MOVE = "last_move"  # class of the move that ENDED at the close of bar ts (persistence baseline input)
LAST_CHANGE = "last_change"  # that move itself (the regression target's persistence baseline)
# The WalkForwardConfig fields the premium label rule reads (horizon, flat band = round_trip_cost, venue and
# premium column): what a model whose input is ``last_move`` keeps, so serving applies the same rule.
LABEL_RULE: tuple[str, ...] = ("horizon_minutes", "round_trip_cost", "kr_venue", "premium_column")


def classify(change: pl.Expr, flat_band: float) -> pl.Expr:
    """Class of a change: down below -band, up above +band, flat in between; null stays null."""
    return (
        pl.when(change.is_null() | change.is_nan())
        .then(None)
        .when(change > flat_band)
        .then(pl.lit(UP))
        .when(change < -flat_band)
        .then(pl.lit(DOWN))
        .otherwise(pl.lit(FLAT))
        .cast(pl.Int8)
    )


def _direction_labels(
    series: pl.DataFrame, *, horizon_minutes: int, flat_band: float, relative: bool
) -> pl.DataFrame:
    """``series`` has ts, coin, interval_s, value (one row per bar and coin)."""
    horizon = timedelta(minutes=horizon_minutes)
    future = series.select(
        "coin",
        ts=pl.col("ts") - horizon,  # the future bar, keyed by the row it labels
        _future_value=pl.col("value"),
        _future_interval=pl.col("interval_s"),
    )
    joined = series.join(future, on=["coin", "ts"], how="left")
    change = (
        pl.col("_future_value") / pl.col("value") - 1.0
        if relative
        else pl.col("_future_value") - pl.col("value")
    )
    known_at = (
        pl.col("ts")
        + horizon
        + pl.duration(seconds=pl.col("_future_interval").fill_null(pl.col("interval_s")))
    )
    return joined.select(
        "ts",
        "coin",
        horizon=pl.lit(horizon_minutes, dtype=pl.Int32),
        label=classify(change, flat_band),
        label_known_at=known_at.cast(UTC_TS),
        change=change.cast(pl.Float64),
    ).sort(["coin", "ts"])


def _check_unique(series: pl.DataFrame, source: str) -> None:
    dupes = series.filter(pl.struct("coin", "ts").is_duplicated())
    if dupes.height:
        raise MarketDataError(
            source=source,
            partition=None,
            problem="more than one bar per (coin, ts)",
            expected="one bar per coin and open time (filter one venue and one interval first)",
            rows=dupes.sort(["coin", "ts"]),
        )


def premium_labels(premium: pl.DataFrame, config: WalkForwardConfig) -> pl.DataFrame:
    """Premium-direction labels for ``config.kr_venue`` and ``config.premium_column`` (LABELS schema)."""
    missing = [
        c for c in ("ts", "coin", "kr_venue", "interval_s", config.premium_column) if c not in premium.columns
    ]
    if missing:
        raise MarketDataError(
            source="premium",
            partition=None,
            problem=f"columns {missing} are missing",
            expected="the PREMIUM schema (kimp.market_data.schemas.PREMIUM)",
        )
    series = premium.filter(pl.col("kr_venue") == config.kr_venue).select(
        "ts", "coin", "interval_s", value=pl.col(config.premium_column)
    )
    if series.height == 0 and premium.height > 0:
        raise MarketDataError(
            source="premium",
            partition=None,
            problem=f"no rows for kr_venue {config.kr_venue!r}",
            expected=f"rows for the configured venue; have {sorted(premium['kr_venue'].unique().to_list())}",
        )
    _check_unique(series, "premium")
    return _direction_labels(
        series, horizon_minutes=config.horizon_minutes, flat_band=config.flat_band, relative=False
    )


def price_labels(candles: pl.DataFrame, config: WalkForwardConfig) -> pl.DataFrame:
    """Price-direction labels per coin from the Korean venue's KRW close (LABELS schema)."""
    bars = candles.filter(
        (pl.col("venue") == config.kr_venue) & (pl.col("quote") == "KRW") & (pl.col("base") != "USDT")
    )
    if bars.height and bars["interval_s"].n_unique() > 1:  # keep the finest interval, like the premium
        bars = bars.filter(pl.col("interval_s") == bars["interval_s"].min())
    series = bars.select("ts", coin=pl.col("base"), interval_s=pl.col("interval_s"), value=pl.col("close"))
    _check_unique(series, f"{config.kr_venue}_candles")
    return _direction_labels(
        series, horizon_minutes=config.horizon_minutes, flat_band=config.flat_band, relative=True
    )


def make_labels(
    config: WalkForwardConfig,
    *,
    premium: pl.DataFrame | None = None,
    candles: pl.DataFrame | None = None,
    target: Target = "premium",
) -> pl.DataFrame:
    """Labels of the chosen target: ``premium`` needs the premium table, ``price`` the candles."""
    if target == "premium":
        if premium is None:
            raise ValueError("target='premium' needs the premium table")
        return premium_labels(premium, config)
    if target == "price":
        if candles is None:
            raise ValueError("target='price' needs the Korean venue's candles")
        return price_labels(candles, config)
    raise ValueError(f"target must be 'premium' or 'price', got {target!r}")


def label_rule(config: WalkForwardConfig) -> dict[str, Any]:
    """The config's premium label rule (LABEL_RULE fields), JSON-ready; ``rule_config`` reads it back."""
    return {f: getattr(config, f) for f in LABEL_RULE}


def rule_config(rule: Mapping[str, Any]) -> WalkForwardConfig:
    """A config with the saved label rule (the other fields default: the label functions read only these)."""
    return WalkForwardConfig(**{f: rule[f] for f in LABEL_RULE})


def last_move(labels: pl.DataFrame) -> pl.DataFrame:
    """The class of the move over the horizon that ended at the close of bar ts: ts, coin, last_move.

    It is the label of the row ``ts - horizon``; that label is known at the close of bar ts, so it may be
    used for the row at ts (the persistence baseline predicts it will repeat). ``last_change``: that
    move's size (when the labels carry ``change``).
    """
    horizon = pl.duration(minutes=pl.col("horizon"))
    extra = {LAST_CHANGE: pl.col("change")} if "change" in labels.columns else {}
    return labels.select(
        "coin", ts=(pl.col("ts") + horizon).cast(UTC_TS), **{LAST_MOVE: pl.col("label")}, **extra
    )
