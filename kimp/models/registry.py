"""Load any saved direction model from its folder: the ``type`` in its ``model.json`` picks the loader.

Every model here saves into a folder with a ``model.json`` sidecar naming its type. The LSTM
(kimp.models.sequence, built separately) is loaded through its module's ``load`` function when present,
imported lazily so that this package works without torch being imported.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from kimp.models.base import FittedModel


def load_model(path: Path) -> FittedModel:
    path = Path(path)
    sidecar = path / "model.json"
    if not sidecar.exists():
        raise FileNotFoundError(f"{path}: no model.json; expected a folder written by a model's save()")
    kind = json.loads(sidecar.read_text()).get("type")
    if kind == "boosting":
        from kimp.models.boosting import BoostingModel

        return BoostingModel.load(path)
    if kind in ("majority", "persistence", "logistic"):
        from kimp.models import baselines

        cls = {
            "majority": baselines.MajorityModel,
            "persistence": baselines.PersistenceModel,
            "logistic": baselines.LogisticModel,
        }[kind]
        return cls.load(path)
    if kind == "ensemble":
        from kimp.models.ensemble import EnsembleModel

        return EnsembleModel.load(path)
    if kind == "lstm":
        module = importlib.import_module("kimp.models.sequence")
        loader = getattr(module, "load", None) or getattr(module, "load_lstm", None)
        if loader is None:
            raise ValueError(f"{path}: kimp.models.sequence has no load()/load_lstm() to read an LSTM")
        return loader(path)
    raise ValueError(f"{path}: unknown model type {kind!r} in model.json")
