"""kimp.research: decision rules fitted on validation rows, the block bootstrap over days, and `kimp research`
plus the ``research_report`` asset end to end on real-format hourly data (tests/fixtures/real_hourly laid
out like ../shared/data/real), with the honesty rules asserted from what was written."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from kimp.models.decision import choose, decide, fit_class_weights, macro_f1
from kimp.research.bootstrap import BootstrapConfig, day_weights, score_table
from kimp.research.study import round_trip_cost

FIXTURE = Path(__file__).parent / "fixtures" / "real_hourly"


def test_class_weights_raise_validation_macro_f1_and_keep_argmax_when_it_is_best() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(3, size=600, p=[0.15, 0.7, 0.15])
    # a model that knows the minority classes but always puts most mass on flat
    p = np.full((600, 3), 0.1)
    p[np.arange(600), 1] = 0.6
    p[np.arange(600), y] += 0.25
    p /= p.sum(axis=1, keepdims=True)
    plain = macro_f1(y, decide(p))
    w, score = fit_class_weights(p, y)
    assert score > plain + 0.3 and w[1] == 1.0 and w[0] > 1.0 and w[2] > 1.0
    assert macro_f1(y, decide(p, w)) == pytest.approx(score)
    # perfectly separating probabilities: no reweighting needed, the plain argmax is kept
    onehot = np.eye(3)[y] * 0.8 + 0.1 / 1.0
    w2, score2 = fit_class_weights(onehot, y)
    assert score2 == pytest.approx(1.0) and np.allclose(w2, 1.0)
    # rows without probabilities are not decided and not used
    assert decide(np.array([[np.nan, np.nan, np.nan]]))[0] == -1
    assert choose({"ensemble": 0.4, "persistence": 0.45, "lstm": float("nan")}) == "persistence"
    # the flat band is the venue's round trip (Bithumb's fees are higher than Upbit's)
    assert round_trip_cost("upbit") == pytest.approx(0.003)
    assert round_trip_cost("bithumb") > round_trip_cost("upbit")


def _predictions(days: int = 12, per_day: int = 24, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * per_day
    ts = [datetime(2021, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(n)]
    y = rng.integers(0, 3, n)
    parts = []
    for name, good in (("persistence", False), ("oracle", True)):
        p = np.full((n, 3), 1 / 3) if not good else np.eye(3)[y] * 0.7 + 0.1
        pred = rng.integers(0, 3, n) if not good else y
        parts.append(
            pl.DataFrame(
                {
                    "ts": ts,
                    "coin": ["BTC"] * n,
                    "model": [name] * n,
                    "p_down": p[:, 0],
                    "p_flat": p[:, 1],
                    "p_up": p[:, 2],
                    "label": y,
                    "pred": pred,
                    "pred_w": pred,
                }
            )
        )
    return pl.concat(parts).with_columns(day=pl.col("ts").dt.date())


def test_block_bootstrap_is_seeded_paired_and_brackets_the_point() -> None:
    frame = _predictions()
    config = BootstrapConfig(n_samples=300, block_days=3, seed=11)
    table, samples = score_table(frame, config=config)
    again, _ = score_table(frame, config=config)
    assert table.equals(again)
    rows = {r["model"]: r for r in table.iter_rows(named=True)}
    assert rows["oracle"]["macro_f1"] == pytest.approx(1.0) and rows["oracle"]["days"] == 12
    for r in rows.values():
        assert r["macro_f1_lo"] <= r["macro_f1"] + 1e-9 <= r["macro_f1_hi"] + 2e-9
    assert rows["persistence"]["delta_macro_f1"] == 0.0 and rows["persistence"]["delta_macro_f1_hi"] == 0.0
    assert rows["oracle"]["delta_macro_f1_lo"] > 0.3 and rows["oracle"]["delta_log_loss_hi"] < 0
    # every sample draws exactly as many days as there are, in blocks of consecutive days
    w = day_weights(12, config)
    assert w.shape == (300, 12) and np.all(w.sum(axis=1) == 12)
    assert samples["oracle"]["macro_f1"].shape == (300,)


@pytest.fixture(scope="module")
def researched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The fixture laid out like the shared folder (the period names the shared file names)."""
    root = tmp_path_factory.mktemp("research")
    data = root / "real"
    (data / "bithumb_binance_1h").mkdir(parents=True)
    (data / "investing_daily").mkdir()
    for f in FIXTURE.glob("*_1h.csv"):
        with f.open("rb") as src, gzip.open(data / "bithumb_binance_1h" / (f.name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    shutil.copy(FIXTURE / "USDKRW_daily.csv", data / "investing_daily" / "USDKRW_daily.csv")
    home = root / "home"
    env = {"KIMP_HOME": str(home), "KIMP_DATA_DIR": str(data), "KIMP_RESEARCH_WINDOW_DAYS": "4"}
    from kimp_pipelines.cli import main

    args = ["research", "--start", "2018-01-19", "--end", "2018-01-21", "--period", "hourly_2018_euphoria"]
    targets = ["--target", "premium", "--target", "change"]
    result = CliRunner().invoke(main, [*args, "--horizon", "1", "--bootstrap", "50", *targets], env=env)
    assert result.exit_code == 0, result.output
    assert "Scores per period, horizon and model" in result.output
    return home, data


def test_kimp_research_scores_every_model_out_of_sample(
    researched: tuple[Path, Path], tmp_path: Path
) -> None:
    home, _ = researched
    out = home / "research"
    scores = pl.read_parquet(out / "research_scores.parquet")
    assert set(scores["model"]) == {"lightgbm", "ensemble", "persistence", "majority", "logistic"}
    assert scores["period"].unique().to_list() == ["hourly_2018_euphoria"] and scores[
        "hours"
    ].unique().to_list() == [1]
    assert scores.filter(pl.col("model") == "persistence")["delta_macro_f1"].item() == 0.0
    assert scores["flat_band"].unique().to_list() == [pytest.approx(0.007)]  # Bithumb's round trip
    preds = pl.read_parquet(out / "predictions" / "hourly_2018_euphoria_1h.parquet")
    assert preds["day"].min() == date(2018, 1, 19) and preds["day"].max() <= date(2018, 1, 21)
    # each day is predicted by models trained on or before it (cutoff = day start - embargo, asserted in
    # kimp.models.walk_forward.training_dataset); the label of a bar is its realized class
    assert (preds["trained_on"] <= preds["day"]).all()
    choices = pl.read_parquet(out / "choices" / "hourly_2018_euphoria_1h.parquet")
    # the ensemble is the product's validated choice among the mixture, the members and the baselines
    assert choices["chosen"].to_list()[0] in {"mixture", "lightgbm", "persistence", "majority", "logistic"}
    # the regression target (premium change in bp) beside the 3-class one, against persistence and zero
    change = pl.read_parquet(out / "research_change.parquet")
    by = {r["model"]: r for r in change.iter_rows(named=True)}
    assert set(by) == {"lightgbm_change", "persistence", "zero"} and by["zero"]["hit_rate"] == 0.5
    assert by["persistence"]["rmse_bp_vs_persistence"] == 0.0 and by["zero"]["rmse_bp_vs_zero"] == 0.0
    assert (
        by["lightgbm_change"]["rmse_bp_lo"]
        <= by["lightgbm_change"]["rmse_bp"]
        <= by["lightgbm_change"]["rmse_bp_hi"]
    )
    cpreds = pl.read_parquet(out / "predictions" / "hourly_2018_euphoria_1h_change.parquet")
    assert (cpreds["trained_on"] <= cpreds["day"]).all()
    # the after-cost backtest of the predictions, positions carried over the days, on Bithumb's fees
    bt = pl.read_parquet(out / "research_backtest.parquet")
    assert set(bt["strategy"]) == {"zscore", "ensemble", "persistence"}
    assert set(bt["coin"]) == {"BTC", "ETH", "all"} and bt["kr_venue"].unique().to_list() == ["bithumb"]
    assert bt["days"].max() == 3 and bt["hours"].unique().to_list() == [1]
    traded = bt.filter((pl.col("coin") != "all") & (pl.col("trades") > 0))
    assert (
        traded.height
        and (traded["cost_fees"] > 0).all()
        and (traded["cost_total"] >= traded["cost_fees"]).all()
    )
    md = (out / "research.md").read_text()
    assert "After-cost backtest" in md and "Regression target" in md and "| z-score rule | BTC | 3 |" in md
    assert "Δ macro-F1 vs persistence" in md and "| hourly_2018_euphoria | premium | 1h | ensemble |" in md
    assert (out / "research.html").read_text().startswith("<!doctype html>")
    assert (out / "research_deltas.png").read_bytes()[:4] == b"\x89PNG"
    # a report combined from saved outputs recomputes the same intervals from the saved predictions
    from kimp.research.bootstrap import BootstrapConfig
    from kimp.research.run import combine_reports

    combined = combine_reports([out], tmp_path / "combined", boot=BootstrapConfig(n_samples=50))
    assert combined.scores.select(scores.columns).equals(scores) and combined.backtest.equals(bt)
    assert combined.change.equals(change)
    assert combined.summary.equals(pl.read_parquet(out / "research_summary.parquet"))


def test_research_report_asset_materializes_over_a_range(
    researched: tuple[Path, Path], tmp_path: Path
) -> None:
    from dagster import materialize

    from kimp.settings import Settings
    from kimp_pipelines.assets.reports import build_research_report

    _, data = researched
    settings = Settings(home=tmp_path / "home", data_dir=str(data)).with_research(
        periods=("hourly_2018_euphoria",),
        horizons_h=(1,),
        window_days=4,
        bootstrap_samples=20,
        targets=("price",),  # the Korean price's direction, labelled from Bithumb's candles
    )
    asset = build_research_report(settings)
    result = materialize(
        [asset],
        run_config={"ops": {"research_report": {"config": {"start": "2018-01-21", "end": "2018-01-21"}}}},
    )
    assert result.success
    scores = result.output_for_node("research_report")
    assert scores.filter(pl.col("model") == "ensemble")["days"].item() == 1
    assert scores["target"].unique().to_list() == ["price"]
    meta = result.asset_materializations_for_node("research_report")[0].metadata
    assert Path(meta["html"].value).exists() and "scores" in meta and "deltas" in meta


def test_backtest_falls_back_to_fixed_slippage_only_where_candles_lack_volume() -> None:
    from kimp.research.backtest import _bars_without_volume
    from kimp.research.periods import get

    period = get("daily_2021")
    ts = [datetime(2021, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    premium = pl.DataFrame({"ts": ts, "coin": ["BTC"] * 3, "kr_venue": ["upbit"] * 3})
    preds = pl.DataFrame({"ts": ts[:2], "model": ["ensemble"] * 2})  # the predicted days: Jan 1 and 2
    full = pl.DataFrame(
        {
            "ts": ts * 2,
            "venue": ["upbit"] * 3 + ["binance"] * 3,
            "base": ["BTC"] * 6,
            "volume": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    assert _bars_without_volume(premium, full, period, preds) == 0
    # a null foreign volume on a predicted day, a missing Korean candle, and a NaN on a day not predicted
    holes = full.with_columns(
        volume=pl.when((pl.col("venue") == "binance") & (pl.col("ts") == ts[0]))
        .then(None)
        .when(pl.col("ts") == ts[2])
        .then(float("nan"))
        .otherwise(pl.col("volume"))
    ).filter(~((pl.col("venue") == "upbit") & (pl.col("ts") == ts[1])))
    assert _bars_without_volume(premium, holes, period, preds) == 2
