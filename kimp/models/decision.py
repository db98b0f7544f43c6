"""Decision rules fitted on VALIDATION rows only: per-class weights for macro-F1, and the validated choice.

- ``fit_class_weights(p, y)``: weights ``w`` (w_flat = 1) so that ``argmax(p * w)`` maximises macro-F1 on
  the validation rows; a grid of powers of two, ties broken towards (1, 1, 1) (plain argmax). The log-loss
  is untouched (the probabilities are not changed, only the decision).
- ``choose(validation)``: the model whose validated macro-F1 (with its weights) is highest among the
  members, the ensemble and the baselines, so the choice is never worse on validation than any of them;
  a day whose best validated model is a baseline says so (the name is a baseline's).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from kimp.models.evaluation import confusion

GRID: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 over the classes present in labels or predictions (kimp.models.evaluation's convention)."""
    if len(y) == 0:
        return float("nan")
    cm = confusion(np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)).astype(np.float64)
    return float(f1_from_confusion(cm[None])[0])


def f1_from_confusion(cms: np.ndarray) -> np.ndarray:
    """Macro-F1 of a stack of 3x3 confusion matrices (k, 3, 3), rows = true class."""
    tp = np.diagonal(cms, axis1=1, axis2=2)
    pred_n = cms.sum(axis=1)
    true_n = cms.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(pred_n + true_n > 0, 2 * tp / (pred_n + true_n), 0.0)
    present = (pred_n + true_n) > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def decide(p: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Class decisions: argmax of the (weighted) probabilities; -1 where a row has no probabilities."""
    p = np.asarray(p, dtype=np.float64)
    ok = np.isfinite(p).all(axis=1) if len(p) else np.zeros(0, dtype=bool)
    out = np.full(len(p), -1, dtype=np.int64)
    w = np.ones(3) if weights is None else np.asarray(weights, dtype=np.float64)
    if ok.any():
        out[ok] = (p[ok] * w[None, :]).argmax(axis=1)
    return out


def fit_class_weights(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(weights, validation macro-F1 with them) over the rows with probabilities and labels."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    ok = np.isfinite(p).all(axis=1) if len(p) else np.zeros(0, dtype=bool)
    p, y = p[ok], y[ok]
    if len(y) == 0:
        return np.ones(3), float("nan")
    best_w, best = np.ones(3), macro_f1(y, decide(p))
    best_dist = 0.0
    for wd, wu in itertools.product(GRID, GRID):
        w = np.array([wd, 1.0, wu])
        score = macro_f1(y, decide(p, w))
        dist = abs(np.log(wd)) + abs(np.log(wu))
        if score > best + 1e-12 or (abs(score - best) <= 1e-12 and dist < best_dist):
            best_w, best, best_dist = w, score, dist
    return best_w, best


def choose(validation: Mapping[str, float]) -> str:
    """The name with the highest validated score (NaN never wins; registration order breaks ties)."""
    finite = {k: v for k, v in validation.items() if np.isfinite(v)}
    if not finite:
        raise ValueError(f"no model has a validation score: {dict(validation)}")
    return max(finite, key=lambda k: finite[k])
