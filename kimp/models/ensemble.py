"""Weighted average of member models' probabilities, the weights learnt on VALIDATION rows only
(kimp.models.walk_forward.fit_day_ensemble chooses the members and the rows; this module combines).

The weights minimise the validation multi-class log-loss over the simplex (non-negative, summing to one;
scipy SLSQP from equal weights). A member that cannot score a row (NaN probabilities, e.g. the LSTM before
it has enough history) is left out of that row and the remaining weights are renormalised (every weight is
floored at 1e-6, so a member weighted zero still speaks when it is the only one); a row no member scored
stays NaN. The same rule applies while fitting, so the weights match how they are used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import minimize

from kimp.models.base import FittedModel

SIDECAR = "model.json"
# The name of the weighted mixture among the ensemble's validated options (walk_forward.fit_day_ensemble).
MIXTURE = "mixture"
_EPS = 1e-12
_FLOOR = 1e-6


def combine(probas: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted mixture of (n, 3) arrays, renormalised per row over the members that scored it."""
    stack = np.stack(probas, axis=1)  # (n, m, 3)
    scored = ~np.isnan(stack).any(axis=2)  # (n, m)
    # A floor keeps a member the optimiser zeroed usable on rows where it is the only one that scored.
    w = np.where(scored, np.maximum(weights, _FLOOR)[None, :], 0.0)
    total = w.sum(axis=1, keepdims=True)
    mix = np.einsum("nm,nmk->nk", w, np.nan_to_num(stack, nan=0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = mix / total
    out[total[:, 0] <= 0] = np.nan
    return out


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1.0))))


def fit_weights(probas: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Simplex weights minimising the log-loss of ``combine(probas, w)`` on rows some member scored."""
    m = len(probas)
    if m == 1:
        return np.ones(1)
    y = np.asarray(labels, dtype=np.int64)
    rows = ~np.all(np.stack([np.isnan(p).any(axis=1) for p in probas], axis=1), axis=1)
    if not rows.any():
        return np.full(m, 1.0 / m)
    sub = [p[rows] for p in probas]
    y = y[rows]

    def loss(w: np.ndarray) -> float:
        return _log_loss(combine(sub, np.clip(w, 0.0, None) + 1e-9), y)

    result = minimize(
        loss,
        np.full(m, 1.0 / m),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0}],
        options={"maxiter": 200, "ftol": 1e-10},
    )
    w = np.clip(result.x, 0.0, None)
    return w / w.sum() if w.sum() > 0 else np.full(m, 1.0 / m)


@dataclass
class EnsembleModel:
    """FittedModel over its members' probabilities."""

    members: dict[str, FittedModel]
    weights: dict[str, float]
    name: str = "ensemble"
    # What validation chose (the mixture, or the one member or baseline that validated best) and that
    # option's validated class weights (down, flat, up) for an arg-max decision; None: not chosen.
    chosen: str = MIXTURE
    class_weights: tuple[float, ...] | None = None

    @property
    def features(self) -> list[str]:
        seen: dict[str, None] = {}
        for member in self.members.values():
            seen.update(dict.fromkeys(member.features))
        return list(seen)

    def combine(self, member_probas: dict[str, np.ndarray]) -> np.ndarray:
        """Mix already computed member probabilities (saves scoring every member twice)."""
        names = list(self.members)
        return combine([member_probas[n] for n in names], np.array([self.weights[n] for n in names]))

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        # member by member on the frame: a sequence member reads the bars before each row
        return self.combine({n: m.predict_proba(frame) for n, m in self.members.items()})

    def predict_proba_rows(self, x: np.ndarray) -> np.ndarray:
        """``x`` in ``features`` order (the union of the members'); each member reads its own columns."""
        columns = self.__dict__.get("_columns")
        if columns is None:  # each member's columns in the union, computed once (members never change)
            where = {f: i for i, f in enumerate(self.features)}
            columns = self.__dict__["_columns"] = {
                n: np.array([where[f] for f in m.features], dtype=np.int64) for n, m in self.members.items()
            }
        return self.combine({n: m.predict_proba_rows(x[:, columns[n]]) for n, m in self.members.items()})

    def save(self, path: Path) -> None:
        """Its weights, and a copy of each member (loadable through the registry, calibration included)."""
        from kimp.models.registry import save_model

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for n, member in self.members.items():
            save_model(n, member, path / "members" / n)
        (path / SIDECAR).write_text(
            json.dumps(
                {
                    "type": "ensemble",
                    "name": self.name,
                    "weights": self.weights,
                    "chosen": self.chosen,
                    "class_weights": list(self.class_weights) if self.class_weights else None,
                }
            )
        )

    @classmethod
    def load(cls, path: Path) -> EnsembleModel:
        from kimp.models.registry import load_model

        path = Path(path)
        meta = json.loads((path / SIDECAR).read_text())
        members = {n: load_model(path / "members" / n) for n in meta["weights"]}
        weights = meta.get("class_weights")
        return cls(
            members=members,
            weights={k: float(v) for k, v in meta["weights"].items()},
            name=meta["name"],
            chosen=meta.get("chosen", MIXTURE),
            class_weights=tuple(float(x) for x in weights) if weights else None,
        )
