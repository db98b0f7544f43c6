"""Temperature scaling: one scalar per model and day, fitted on the VALIDATION rows only.

A model whose probabilities are overconfident (a log-loss far above its accuracy's worth: the LSTM,
a weakly regularised logistic regression on a few hundred rows) is re-scaled as
``p_T = softmax(log p / T)``: T > 1 softens, T < 1 sharpens; the arg-max (and so accuracy and F1) never
changes. T minimises the validation log-loss over [0.25, 20]; the test split and the predicted day never
enter. Rows a model cannot score (NaN) stay NaN.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import minimize_scalar

from kimp.models.base import FittedModel

CALIBRATION_FILE = "calibration.json"
_EPS = 1e-12
T_RANGE = (0.25, 20.0)


def scale(p: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` per row, in float64 (rows summing to 1 within 1e-12)."""
    p = np.asarray(p, dtype=np.float64)
    if temperature == 1.0:
        return p
    ok = np.isfinite(p).all(axis=1)
    logits = np.log(np.clip(p[ok], _EPS, 1.0)) / temperature
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    out = np.full_like(p, np.nan)
    out[ok] = e / e.sum(axis=1, keepdims=True)
    return out


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1.0))))


def fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the log-loss of the rows ``p`` scored (1.0 with fewer than 20 rows)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    ok = np.isfinite(p).all(axis=1)
    p, y = p[ok], y[ok]
    if len(y) < 20:
        return 1.0
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    result = minimize_scalar(
        lambda log_t: log_loss(scale(p, float(np.exp(log_t))), y), bounds=(lo, hi), method="bounded"
    )
    t = float(np.exp(result.x))
    # keep T = 1 unless scaling really helps (a flat optimum is no reason to move the probabilities)
    return t if log_loss(scale(p, t), y) < log_loss(p, y) - 1e-6 else 1.0


@dataclass
class Calibrated:
    """A fitted model with a temperature (FittedModel)."""

    model: FittedModel
    temperature: float

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def features(self) -> list[str]:
        return self.model.features

    def __getattr__(self, item: str) -> object:  # importance, history, ...: the wrapped model's
        if item == "model":
            raise AttributeError(item)
        return getattr(self.model, item)

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return scale(self.model.predict_proba(frame), self.temperature)

    def predict_proba_rows(self, x: np.ndarray) -> np.ndarray:
        return scale(self.model.predict_proba_rows(x), self.temperature)

    def save(self, path: Path) -> None:
        self.model.save(path)
        (Path(path) / CALIBRATION_FILE).write_text(json.dumps({"temperature": self.temperature}))


def with_saved_calibration(model: FittedModel, path: Path) -> FittedModel:
    """``model`` wrapped in the temperature saved next to it, if any."""
    sidecar = Path(path) / CALIBRATION_FILE
    if not sidecar.exists():
        return model
    return Calibrated(model, float(json.loads(sidecar.read_text())["temperature"]))
