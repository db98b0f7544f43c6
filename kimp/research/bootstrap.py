"""Scores of out-of-sample predictions with block-bootstrap confidence intervals over days (seeded).

Bars of one day are strongly dependent (overlapping horizons, one premium regime), so the unit resampled
is the day, in moving blocks of ``block_days`` consecutive days (circular), ``n_samples`` times with
``numpy.random.default_rng(seed)``. Every model is scored on the SAME resampled days in a sample, so the
difference to a baseline (``delta_*``) has its own paired interval. Per day the 3x3 confusion matrices and
log-loss sums are computed once; a sample is a weighted sum of them (fast enough for thousands of samples).

Rows scored: label known and probabilities present, for every model (the rows all models scored, so the
comparison is on the same bars).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kimp.models.decision import f1_from_confusion

_EPS = 1e-12


@dataclass(frozen=True)
class BootstrapConfig:
    n_samples: int = 1000
    block_days: int = 5
    seed: int = 7
    level: float = 0.90  # two-sided interval


def common_rows(predictions: pl.DataFrame) -> pl.DataFrame:
    """Rows with a label whose (ts, coin) every model scored."""
    ok = predictions.filter(
        pl.col("label").is_not_null()
        & pl.all_horizontal([pl.col(c).is_not_null() for c in ("p_down", "p_flat", "p_up")])
    )
    n_models = ok["model"].n_unique()
    full = ok.group_by("ts", "coin").agg(n=pl.len()).filter(pl.col("n") == n_models).select("ts", "coin")
    return ok.join(full, on=["ts", "coin"], how="semi")


def _per_day(frame: pl.DataFrame, days: list, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confusions (n_days, 3, 3), log-loss sums (n_days,), counts (n_days,)) of one model."""
    index = {d: i for i, d in enumerate(days)}
    di = np.array([index[d] for d in frame["day"].to_list()], dtype=np.int64)
    y = frame["label"].to_numpy().astype(np.int64)
    pred = frame[column].to_numpy().astype(np.int64)
    p = frame.select("p_down", "p_flat", "p_up").to_numpy().astype(np.float64)
    p = p / np.clip(p.sum(axis=1, keepdims=True), _EPS, None)
    cms = np.zeros((len(days), 9))
    np.add.at(cms, (di, y * 3 + np.clip(pred, 0, 2)), 1.0)
    ll = np.zeros(len(days))
    np.add.at(ll, di, -np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1.0)))
    n = np.bincount(di, minlength=len(days)).astype(np.float64)
    return cms.reshape(-1, 3, 3), ll, n


def day_weights(n_days: int, config: BootstrapConfig) -> np.ndarray:
    """(n_samples, n_days) how many times each day is drawn in each sample (moving blocks, circular)."""
    rng = np.random.default_rng(config.seed)
    block = max(1, min(config.block_days, n_days))
    n_blocks = int(np.ceil(n_days / block))
    starts = rng.integers(0, n_days, size=(config.n_samples, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(config.n_samples, -1)[:, :n_days]
    idx %= n_days
    w = np.zeros((config.n_samples, n_days))
    np.add.at(w, (np.repeat(np.arange(config.n_samples), idx.shape[1]), idx.ravel()), 1.0)
    return w


def score_table(
    predictions: pl.DataFrame,
    *,
    baseline: str = "persistence",
    config: BootstrapConfig | None = None,
) -> tuple[pl.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """One row per model: rows, days, macro-F1 (argmax and validated weights), log-loss, their intervals
    and the paired differences to ``baseline``; and the bootstrap samples (for averaging over periods)."""
    config = config or BootstrapConfig()
    rows = common_rows(predictions)
    days = sorted(rows["day"].unique().to_list())
    if not days:
        return pl.DataFrame(), {}
    w = day_weights(len(days), config)
    lo_q, hi_q = (1 - config.level) / 2, 1 - (1 - config.level) / 2
    samples: dict[str, dict[str, np.ndarray]] = {}
    point: dict[str, dict[str, float]] = {}
    ones = np.ones((1, len(days)))
    for (name,), part in rows.group_by(["model"], maintain_order=True):
        cms, ll, n = _per_day(part, days, "pred")
        cms_w, _, _ = _per_day(part, days, "pred_w")
        s, pt = {}, {}
        for key, weights in (("s", w), ("p", ones)):
            out = {
                "macro_f1": f1_from_confusion(np.einsum("bd,dij->bij", weights, cms)),
                "macro_f1_w": f1_from_confusion(np.einsum("bd,dij->bij", weights, cms_w)),
                "log_loss": (weights @ ll) / np.maximum(weights @ n, 1.0),
            }
            if key == "s":
                s = out
            else:
                pt = {k: float(v[0]) for k, v in out.items()}
        samples[str(name)] = s
        point[str(name)] = {**pt, "rows": float(n.sum())}
    table = []
    for name, s in samples.items():
        row: dict[str, object] = {"model": name, "rows": int(point[name]["rows"]), "days": len(days)}
        for metric in ("macro_f1", "macro_f1_w", "log_loss"):
            row[metric] = point[name][metric]
            row[f"{metric}_lo"] = float(np.quantile(s[metric], lo_q))
            row[f"{metric}_hi"] = float(np.quantile(s[metric], hi_q))
            if baseline in samples:
                d = s[metric] - samples[baseline][metric]
                row[f"delta_{metric}"] = point[name][metric] - point[baseline][metric]
                row[f"delta_{metric}_lo"] = float(np.quantile(d, lo_q))
                row[f"delta_{metric}_hi"] = float(np.quantile(d, hi_q))
        table.append(row)
    return pl.DataFrame(table).sort("model"), samples
