"""Scores of direction predictions and the plots of the Dagster report.

``predictions``: ts, coin, horizon, model, p_down, p_flat, p_up, label (the PREDICTIONS schema of
kimp.models.walk_forward). Only rows with a known label and finite probabilities are scored; ``n`` says how
many. Calibration is the top-label expected calibration error over 10 equal-width confidence bins.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from kimp.models.base import CLASSES

PROBA = ["p_down", "p_flat", "p_up"]
_EPS = 1e-12
N_BINS = 10


def _arrays(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    p = frame.select(PROBA).to_numpy().astype(np.float64)
    y = frame["label"].to_numpy().astype(np.int64)
    return p, y


def scored_rows(predictions: pl.DataFrame) -> pl.DataFrame:
    """Rows that can be scored: label known and all three probabilities finite."""
    return predictions.filter(
        pl.col("label").is_not_null() & pl.all_horizontal([pl.col(c).is_finite() for c in PROBA])
    )


def confusion(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """3x3 counts, rows = true class, columns = predicted class."""
    return np.bincount(y * 3 + pred, minlength=9).reshape(3, 3)


def expected_calibration_error(p: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> float:
    if len(y) == 0:
        return float("nan")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(ece)


def scores(p: np.ndarray, y: np.ndarray) -> dict[str, object]:
    """Every metric of one model's (n, 3) probabilities against labels y."""
    n = len(y)
    out: dict[str, object] = {"n": n}
    if n == 0:
        return out
    pred = p.argmax(axis=1)
    cm = confusion(y, pred)
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(cm.sum(axis=0) > 0, tp / cm.sum(axis=0), 0.0)
        recall = np.where(cm.sum(axis=1) > 0, tp / cm.sum(axis=1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    # Macro averages over the classes present in the labels or the predictions (sklearn's convention).
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    norm = p / np.clip(p.sum(axis=1, keepdims=True), _EPS, None)
    out.update(
        accuracy=float(tp.sum() / n),
        macro_precision=float(precision[present].mean()),
        macro_recall=float(recall[present].mean()),
        macro_f1=float(f1[present].mean()),
        log_loss=float(-np.mean(np.log(np.clip(norm[np.arange(n), y], _EPS, 1.0)))),
        ece=expected_calibration_error(norm, y),
        confusion=json.dumps(cm.tolist()),
    )
    for k, cls in enumerate(CLASSES):
        out[f"precision_{cls}"] = float(precision[k])
        out[f"recall_{cls}"] = float(recall[k])
        out[f"f1_{cls}"] = float(f1[k])
    return out


METRICS_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "horizon": pl.Int32(),
    "n": pl.Int64(),
    "accuracy": pl.Float64(),
    "macro_precision": pl.Float64(),
    "macro_recall": pl.Float64(),
    "macro_f1": pl.Float64(),
    "log_loss": pl.Float64(),
    "ece": pl.Float64(),
    **{f"{m}_{c}": pl.Float64() for c in CLASSES for m in ("precision", "recall", "f1")},
    "confusion": pl.String(),  # JSON [[...], [...], [...]], rows = true class (down, flat, up)
}


def evaluate(predictions: pl.DataFrame, *, by: tuple[str, ...] = ("model", "horizon")) -> pl.DataFrame:
    """One row of metrics per model and horizon (add e.g. "day" to ``by`` for metrics over time)."""
    rows = []
    usable = scored_rows(predictions)
    groups = predictions.select(list(by)).unique().sort(list(by))
    for key in groups.iter_rows(named=True):
        part = usable.filter(pl.all_horizontal([pl.col(k) == v for k, v in key.items()]))
        p, y = _arrays(part)
        rows.append({**key, **scores(p, y)})
    schema = {
        **{k: predictions.schema[k] for k in by},
        **{k: v for k, v in METRICS_SCHEMA.items() if k not in by},
    }
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def evaluate_daily(predictions: pl.DataFrame) -> pl.DataFrame:
    """Metrics per UTC day of ``ts``, model and horizon (input of metrics_over_time_png)."""
    with_day = predictions.with_columns(day=pl.col("ts").dt.date())
    return evaluate(with_day, by=("day", "model", "horizon"))


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def confusion_png(matrix: np.ndarray | str, path: Path, *, title: str = "confusion matrix") -> Path:
    """Heat map of a 3x3 confusion matrix (array, or the JSON string of ``evaluate``)."""
    cm = np.asarray(json.loads(matrix) if isinstance(matrix, str) else matrix)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(cm, cmap="Blues")
    for i in range(3):
        for j in range(3):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color="black")
    ax.set_xticks(range(3), CLASSES)
    ax.set_yticks(range(3), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def reliability(p: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> pl.DataFrame:
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram's points)."""
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    rows = [
        {
            "bin": b,
            "confidence": float(conf[bins == b].mean()),
            "accuracy": float(correct[bins == b].mean()),
            "n": int((bins == b).sum()),
        }
        for b in range(n_bins)
        if (bins == b).any()
    ]
    return pl.DataFrame(
        rows, schema={"bin": pl.Int64, "confidence": pl.Float64, "accuracy": pl.Float64, "n": pl.Int64}
    )


def calibration_png(predictions: pl.DataFrame, path: Path, *, models: list[str] | None = None) -> Path:
    """Reliability diagram (top-label confidence vs accuracy), one line per model."""
    usable = scored_rows(predictions)
    names = models or sorted(usable["model"].unique().to_list())
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name in names:
        p, y = _arrays(usable.filter(pl.col("model") == name))
        if len(y):
            rel = reliability(p, y)
            ax.plot(
                rel["confidence"],
                rel["accuracy"],
                marker="o",
                label=f"{name} (ECE {expected_calibration_error(p, y):.3f})",
            )
    ax.set_xlabel("predicted probability of the predicted class")
    ax.set_ylabel("observed accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("reliability diagram")
    return _save(fig, path)


def metrics_over_time_png(
    frame: pl.DataFrame, path: Path, *, metrics: tuple[str, ...] = ("accuracy", "macro_f1", "log_loss")
) -> Path:
    """Daily metrics per model (``frame`` from evaluate_daily, or any frame with day, model and the metrics)."""
    plt = _plt()
    fig, axes = plt.subplots(len(metrics), 1, figsize=(8, 2.4 * len(metrics)), sharex=True, squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        for name in sorted(frame["model"].unique().to_list()):
            part = frame.filter(pl.col("model") == name).sort("day")
            ax.plot(part["day"].to_list(), part[metric].to_list(), marker=".", label=name)
        ax.set_ylabel(metric)
    axes[0, 0].legend(fontsize=7, ncols=3)
    axes[-1, 0].set_xlabel("day (UTC)")
    fig.autofmt_xdate()
    return _save(fig, path)
