"""Evaluation metrics agree with scikit-learn; unscorable rows are skipped; the report plots render."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score

from kimp.models.evaluation import (
    calibration_png,
    confusion_png,
    evaluate,
    evaluate_daily,
    expected_calibration_error,
    metrics_over_time_png,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _predictions(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for model, sharp in (("good", 3.0), ("noise", 0.0)):
        y = rng.integers(0, 3, size=n)
        logits = rng.standard_normal((n, 3))
        logits[np.arange(n), y] += sharp
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        parts.append(
            pl.DataFrame(
                {
                    "ts": [T0 + timedelta(hours=i) for i in range(n)],
                    "coin": ["BTC"] * n,
                    "horizon": pl.Series([60] * n, dtype=pl.Int32),
                    "model": [model] * n,
                    "p_down": p[:, 0],
                    "p_flat": p[:, 1],
                    "p_up": p[:, 2],
                    "label": pl.Series(y, dtype=pl.Int8),
                }
            )
        )
    return pl.concat(parts)


def test_metrics_match_scikit_learn() -> None:
    preds = _predictions()
    metrics = evaluate(preds)
    assert metrics["model"].to_list() == ["good", "noise"]
    for row in metrics.iter_rows(named=True):
        part = preds.filter(pl.col("model") == row["model"])
        p = part.select("p_down", "p_flat", "p_up").to_numpy()
        y = part["label"].to_numpy()
        pred = p.argmax(axis=1)
        assert row["n"] == part.height
        assert np.isclose(row["accuracy"], accuracy_score(y, pred))
        assert np.isclose(row["macro_f1"], f1_score(y, pred, average="macro"))
        assert np.isclose(row["macro_precision"], precision_score(y, pred, average="macro", zero_division=0))
        assert np.isclose(row["macro_recall"], recall_score(y, pred, average="macro"))
        assert np.isclose(row["f1_up"], f1_score(y, pred, average=None)[2])
        assert np.isclose(row["log_loss"], log_loss(y, p, labels=[0, 1, 2]))
        cm = np.array(json.loads(row["confusion"]))
        assert cm.sum() == part.height and np.trace(cm) == (pred == y).sum()
    good, noise = metrics.row(0, named=True), metrics.row(1, named=True)
    assert good["accuracy"] > 0.7 > 0.45 > noise["accuracy"]


def test_rows_without_label_or_score_are_not_counted() -> None:
    preds = _predictions(50)
    preds = preds.with_columns(
        label=pl.when(pl.col("ts") < T0 + timedelta(hours=10)).then(None).otherwise(pl.col("label")),
        p_up=pl.when(pl.col("ts") > T0 + timedelta(hours=45)).then(float("nan")).otherwise(pl.col("p_up")),
    )
    metrics = evaluate(preds)
    assert metrics["n"].to_list() == [36, 36]  # 50 - 10 unlabelled (hours 0..9) - 4 unscored (hours 46..49)


def test_expected_calibration_error_separates_calibrated_from_overconfident() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    conf = rng.uniform(0.4, 0.95, size=n)
    correct = rng.random(n) < conf
    y = np.zeros(n, dtype=int)
    p = np.zeros((n, 3))
    p[:, 0] = conf
    p[:, 1] = p[:, 2] = (1 - conf) / 2
    y[~correct] = 1
    assert expected_calibration_error(p, y) < 0.03  # correct as often as it claims
    over = p.copy()
    over[:, 0] = 0.99
    over[:, 1] = over[:, 2] = 0.005
    assert expected_calibration_error(over, y) > 0.2


def test_plots_render(tmp_path: Path) -> None:
    preds = _predictions(96)
    metrics = evaluate(preds)
    cm_png = confusion_png(metrics["confusion"][0], tmp_path / "cm.png")
    cal_png = calibration_png(preds, tmp_path / "cal.png")
    daily = evaluate_daily(preds)
    assert daily.height == 2 * 4 and "day" in daily.columns
    time_png = metrics_over_time_png(daily, tmp_path / "time.png")
    for png in (cm_png, cal_png, time_png):
        assert png.read_bytes()[:4] == b"\x89PNG"
