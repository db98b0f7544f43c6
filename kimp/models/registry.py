"""Load any saved direction model from its folder: the ``type`` in its ``model.json`` picks the loader.

Every model here saves into a folder with a ``model.json`` sidecar naming its type. The LSTM
(kimp.models.sequence, built separately) writes ``lstm_config.json`` instead and is read by its module's
``load_lstm``, imported lazily so that loading any other model never imports torch.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from kimp.models.base import FittedModel


def load_model(path: Path) -> FittedModel:
    path = Path(path)
    sidecar = path / "model.json"
    if not sidecar.exists() and (path / "lstm_config.json").exists():  # kimp.models.sequence's own format
        return _load_lstm(path)
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
        return _load_lstm(path)
    raise ValueError(f"{path}: unknown model type {kind!r} in model.json")


def _load_lstm(path: Path) -> FittedModel:
    module = importlib.import_module("kimp.models.sequence")
    loader = getattr(module, "load_lstm", None) or getattr(module, "load", None)
    if loader is None:
        raise ValueError(f"{path}: kimp.models.sequence has no load_lstm() to read an LSTM")
    return loader(path)  # type: ignore[no-any-return]
