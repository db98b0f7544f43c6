"""Does the sentiment family help? A daily walk-forward on the real premium, with and without it.

Data (``../shared/data/real``): the daily BTC kimchi premium of Kimplog (Upbit close vs Bitstamp close at the
ECB rate), the daily Upbit BTC/KRW and Bitstamp BTC/USD candles of investing_daily, and the cryptonews
headlines (2021-10-12..2022-04-30) scored by a sentiment model. Features are kimp's own (``build_features``
on daily bars): the premium family alone, and the premium family plus the ``sentiment`` family.

Target: the sign of the next day's premium change (up = 1), known at the close of day D+1. For each day D
of the test range a logistic regression (median imputation, standard scaling, L2) is fitted on every earlier
day whose label was known by D's close (rows t <= D - 1), then predicts D. Nothing after D reaches the model
of D; both variants see the same days. Reported: accuracy, log loss and Brier score of each, and the
majority-class baseline, as they come out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from kimp.market_data.schemas import CANDLES, NEWS, PREMIUM

DAY_S = 86_400


def daily_premium(kimplog_csv: Path) -> pl.DataFrame:
    """Kimplog's daily rows as a PREMIUM table (BTC, upbit, 1-day bars; ts = the UTC day's open)."""
    raw = pl.read_csv(kimplog_csv, infer_schema_length=10_000)
    ts = pl.col("date").str.to_date().cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    frame = raw.select(
        ts.alias("ts"),
        pl.lit("BTC").alias("coin"),
        pl.lit("upbit").alias("kr_venue"),
        pl.lit(DAY_S).alias("interval_s"),
        (pl.col("btc_premium_pct") / 100).alias("premium_fx"),
        (pl.col("usdt_premium_pct") / 100).alias("premium_usdt"),
        pl.col("upbit_btc_krw_close").alias("kr_close"),
        pl.col("foreign_btc_usd_close").alias("binance_close"),
        pl.col("upbit_usdt_krw_close").alias("usdt_krw_close"),
        pl.col("usdkrw_fx").alias("usdkrw"),
        (ts + pl.duration(days=1)).alias("fx_published_at"),
        pl.lit(False).alias("stale"),
    ).filter(pl.col("premium_fx").is_not_null())
    return frame.select([pl.col(c).cast(t) for c, t in PREMIUM.items()]).sort("ts")


def daily_candles(folder: Path) -> pl.DataFrame:
    """Upbit BTC/KRW and Bitstamp BTC/USD daily candles (Bitstamp stands in for the foreign leg)."""
    parts = []
    for file, venue, quote in (
        ("upbit_BTCKRW_daily.csv", "upbit", "KRW"),
        ("bitstamp_BTCUSD_daily.csv", "binance", "USDT"),
    ):
        raw = pl.read_csv(folder / file, infer_schema_length=10_000)
        parts.append(
            raw.select(
                pl.col("date").str.to_date().cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"),
                pl.lit(venue).alias("venue"),
                pl.lit(f"BTC/{quote}").alias("symbol"),
                pl.lit("BTC").alias("base"),
                pl.lit(quote).alias("quote"),
                pl.lit(DAY_S).alias("interval_s"),
                "open",
                "high",
                "low",
                "close",
                "volume",
                pl.lit(None, pl.Float64).alias("quote_volume"),
            )
        )
    return pl.concat(parts).select([pl.col(c).cast(t) for c, t in CANDLES.items()]).sort("venue", "ts")


def cryptonews(csv: Path) -> pl.DataFrame:
    """The cryptonews headlines in the NEWS schema (published_at taken as UTC, as the files source does)."""
    raw = pl.read_csv(csv, infer_schema_length=10_000)
    frame = raw.select(
        pl.col("published_at")
        .str.to_datetime()
        .dt.replace_time_zone("UTC")
        .cast(pl.Datetime("us", "UTC"))
        .alias("ts"),
        pl.col("source"),
        pl.col("title").alias("headline"),
        pl.col("text"),
    )
    return frame.select([pl.col(c).cast(t) for c, t in NEWS.items()]).sort("ts")


@dataclass
class StudyResult:
    table: pl.DataFrame  # one row per variant: days, accuracy, log_loss, brier
    predictions: pl.DataFrame  # day, y, p_premium_only, p_with_sentiment
    features: dict[str, list[str]]

    def markdown(self) -> str:
        with pl.Config(
            tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True
        ):
            return str(self.table)


def feature_frame(
    premium: pl.DataFrame, candles: pl.DataFrame, scored: pl.DataFrame | None, start: datetime, end: datetime
) -> pl.DataFrame:
    from kimp.features import FeatureConfig, FeatureInputs, build_features

    inputs = FeatureInputs(premium=premium, candles=candles, news_sentiment=scored)
    result = build_features(
        inputs, start=start, end=end, config=FeatureConfig(coins=("BTC",), kr_venues=("upbit",))
    )
    return result.frame


def walk_forward(
    frame: pl.DataFrame,
    premium: pl.DataFrame,
    variants: dict[str, Sequence[str]],
    test_days: Sequence[date],
    *,
    min_train: int = 30,
) -> StudyResult:
    """Daily refits; row t's label (premium up from t to t+1) is known at the close of t+1."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    nxt = premium.select("ts", pl.col("premium_fx").alias("p0")).with_columns(
        p1=pl.col("p0").shift(-1), next_ts=pl.col("ts").shift(-1)
    )
    data = frame.join(nxt, on="ts", how="inner").filter(
        (pl.col("next_ts") - pl.col("ts") == pl.duration(days=1)) & (pl.col("p1") != pl.col("p0"))
    )
    data = data.with_columns(y=(pl.col("p1") > pl.col("p0")).cast(pl.Int8), day=pl.col("ts").dt.date()).sort(
        "ts"
    )
    rows: dict[str, list[float]] = {k: [] for k in variants}
    ys: list[int] = []
    days: list[date] = []
    for d in test_days:
        test = data.filter(pl.col("day") == d)
        train = data.filter(pl.col("day") <= d - timedelta(days=1))  # labels known by the close of d
        if test.height == 0 or train.height < min_train or train["y"].n_unique() < 2:
            continue
        days.append(d)
        ys.append(int(test["y"][0]))
        for name, cols in variants.items():
            model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                                  LogisticRegression(C=0.1, max_iter=2000))  # fmt: skip
            model.fit(train.select(cols).to_numpy(), train["y"].to_numpy())
            rows[name].append(float(model.predict_proba(test.select(cols).to_numpy())[0, 1]))
    y = np.array(ys)
    table_rows = []
    if len(y):
        majority = np.full(len(y), float(data.filter(pl.col("day") < days[0])["y"].mean()))
        for name, p in {
            **{k: np.array(v) for k, v in rows.items()},
            "base rate (no features)": majority,
        }.items():
            table_rows.append(
                {
                    "variant": name,
                    "days": len(y),
                    "accuracy": float(((p > 0.5).astype(int) == y).mean()),
                    "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
                    "brier": float(brier_score_loss(y, p)),
                }
            )
    preds = pl.DataFrame({"day": days, "y": ys, **{f"p_{k}": v for k, v in rows.items()}})
    return StudyResult(pl.DataFrame(table_rows), preds, {k: list(v) for k, v in variants.items()})


def run_study(
    shared_real: Path,
    scored: pl.DataFrame,
    *,
    first_test: date = date(2022, 1, 1),
    last_test: date = date(2022, 4, 28),
    history_from: date = date(2021, 8, 1),
) -> StudyResult:
    premium = daily_premium(shared_real / "kimplog_daily_premium" / "kimplog_daily_premium.csv")
    candles = daily_candles(shared_real / "investing_daily")
    start = datetime(2021, 10, 1, tzinfo=UTC)
    end = datetime(last_test.year, last_test.month, last_test.day, tzinfo=UTC) + timedelta(days=2)
    lo = datetime(history_from.year, history_from.month, history_from.day, tzinfo=UTC)
    premium = premium.filter((pl.col("ts") >= lo) & (pl.col("ts") < end))
    candles = candles.filter((pl.col("ts") >= lo) & (pl.col("ts") < end))
    frame = feature_frame(premium, candles, scored, start, end)
    from kimp.features import catalog

    families = {s.name: s.family for s in catalog()}
    usable = [c for c in frame.columns if c in families and frame[c].null_count() < frame.height * 0.2]
    base = [c for c in usable if families[c] == "premium"]
    sent = [c for c in usable if families[c] == "sentiment"]
    days = [first_test + timedelta(days=i) for i in range((last_test - first_test).days + 1)]
    return walk_forward(frame, premium, {"premium only": base, "premium + sentiment": base + sent}, days)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m kimp.sentiment.study MODEL_DIR|lm|vader|wordlist [SHARED_REAL]``: print the comparison."""
    import sys

    from kimp.sentiment.scoring import Scorer, score_news

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit(main.__doc__)
    real = (
        Path(args[1])
        if len(args) > 1
        else Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
    )
    if args[0] in ("lm", "vader", "wordlist"):
        scorer = Scorer.for_lexicon(args[0])
    else:
        from kimp.sentiment.store import load_folder

        scorer = Scorer.for_model(load_folder(Path(args[0])))
    scored = score_news(cryptonews(real / "cryptonews_2021_2022" / "cryptonews.csv.gz"), scorer)
    result = run_study(real, scored)
    print(f"headlines scored by {scorer.name}: {scored.height}")
    print(result.markdown())


if __name__ == "__main__":
    main()
