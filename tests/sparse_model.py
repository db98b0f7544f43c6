"""A member that scores only every fifth bar (e.g. a model that needs a rare input): the ensemble of a day
must leave it out and say why, rather than weight it on a fifth of the validation rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.models.base import WalkForwardConfig
from kimp.models.registry import ModelSpec, register


class SparseModel:
    def __init__(self) -> None:
        self.name, self.features = "sparse", ["f_signal"]

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        x = frame["f_signal"].fill_null(0.0).to_numpy().astype(np.float64)
        logits = np.stack([-x, np.zeros_like(x), x], axis=1)
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        p[frame["ts"].dt.minute().to_numpy() % 5 != 0] = np.nan
        return p

    def save(self, path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    @classmethod
    def load(cls, path: Path) -> SparseModel:
        return cls()


def fit(frame: pl.DataFrame, config: WalkForwardConfig, *, features: list[str], params: Any) -> SparseModel:
    return SparseModel()


register(ModelSpec(name="sparse", fit=fit, load=SparseModel.load, calibrate=False), replace=True)
