"""A model added the way any model is added to kimp: this one module, registered at its end.

Nearest class centroid: the mean of each class's training rows in standardised feature space; the
probabilities are a softmax of minus the squared distances (per feature). Nothing else in kimp knows it:
naming the module in ``Settings.plugins`` (KIMP_PLUGINS) and the model in ``WalkForwardConfig.models``
(KIMP_WF_MODELS) makes it a daily asset, an ensemble candidate and a registered MLflow model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.models.base import WalkForwardConfig
from kimp.models.dataset import feature_matrix
from kimp.models.registry import ModelSpec, register


@dataclass
class CentroidModel:
    features: list[str]
    mean: np.ndarray
    std: np.ndarray
    centroids: np.ndarray  # (3, n_features); NaN for a class absent from training
    name: str = "centroid"

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return self.predict_proba_rows(feature_matrix(frame, self.features))

    def predict_proba_rows(self, x: np.ndarray) -> np.ndarray:
        x = np.nan_to_num((x - self.mean) / self.std)
        d = ((x[:, None, :] - self.centroids[None, :, :]) ** 2).mean(axis=2)  # (n, 3)
        logits = np.where(np.isnan(d), -np.inf, -d)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: getattr(self, k).tolist() for k in ("mean", "std", "centroids")}
        (path / "centroid.json").write_text(json.dumps({"features": self.features, **state}))

    @classmethod
    def load(cls, path: Path) -> CentroidModel:
        raw = json.loads((Path(path) / "centroid.json").read_text())
        arrays = {k: np.asarray(raw[k], dtype=np.float64) for k in ("mean", "std", "centroids")}
        return cls(features=raw["features"], **arrays)


def fit(frame: pl.DataFrame, config: WalkForwardConfig, *, features: list[str], params: Any) -> CentroidModel:
    train = frame.filter(pl.col("split") == "train")
    x = feature_matrix(train, features).astype(np.float64)
    mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0) + 1e-9
    z = np.nan_to_num((x - mean) / std)
    y = train["label"].to_numpy()
    centroids = np.stack(
        [z[y == k].mean(axis=0) if (y == k).any() else np.full(z.shape[1], np.nan) for k in range(3)]
    )
    return CentroidModel(features=list(features), mean=mean, std=std, centroids=centroids)


register(
    ModelSpec(name="centroid", fit=fit, load=CentroidModel.load, description="nearest class centroid"),
    replace=True,
)
