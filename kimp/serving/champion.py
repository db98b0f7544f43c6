"""The served model: the champion of ``kimp-<model>`` in the MLflow registry, reloaded when the alias moves.

Resolution: the version the alias ``champion`` points to, else the newest version. ``ChampionHolder.poll()``
asks the registry (cheap: one query) and, when the answer differs from the loaded version, loads the new
one and swaps it in atomically; requests in flight keep the model they started with. ``start()`` polls in a
daemon thread every ``poll_s`` seconds, so a promotion (``MlflowClient().set_registered_model_alias(...,
"champion", v)``) reaches a running service without a restart.

Loading uses public MLflow APIs only: the version's artifacts are downloaded (a no-op copy for a local
store), the pyfunc flavour's ``data`` folder is read by kimp's own loader (kimp.models.registry.load_model),
the same code ``mlflow.pyfunc.load_model`` runs for a kimp model, without the pandas round trip per call.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.models.tracking import registered_name

log = logging.getLogger("kimp.serving.champion")
ALIAS = "champion"


class NoModelError(RuntimeError):
    """No version of the served model is registered (or it could not be loaded)."""


@dataclass(frozen=True)
class LoadedModel:
    name: str  # the kimp model (e.g. ensemble)
    registered: str  # kimp-<name>
    version: str
    via: str  # "alias champion" | "newest version"
    model: Any  # kimp.models.base.FittedModel
    features: tuple[str, ...]
    history: int  # bars a sequence member needs before the scored row (1: none)
    load_s: float
    loaded_at: datetime
    feature_set: str | None  # the catalog hash the version was trained on (its tag), when known

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """(n, 3) probabilities for ``frame`` (ts, coin and features; sorted by coin, ts): for models that
        read the bars before a row (``history`` > 1)."""
        return np.asarray(self.model.predict_proba(frame), dtype=np.float64)

    def predict_rows(self, x: np.ndarray) -> np.ndarray:
        """(n, 3) probabilities of the rows of ``x`` (``features`` order, NaN = null), each on its own."""
        return np.asarray(self.model.predict_proba_rows(x), dtype=np.float64)


def _history_of(model: Any) -> int:
    """Bars of context the model reads per scored row (the LSTM's window; members of an ensemble)."""
    members = getattr(model, "members", None)
    if isinstance(members, dict):
        return max([_history_of(m) for m in members.values()] or [1])
    inner = getattr(model, "model", None)  # calibrated wrappers
    steps = getattr(model, "steps", None)
    if isinstance(steps, int) and steps > 0:
        return steps
    return _history_of(inner) if inner is not None and inner is not model else 1


def label_rule_of(model: Any) -> dict[str, Any] | None:
    """The label rule (kimp.models.labels.LABEL_RULE) kept by the model, or by a member or calibrated
    wrapper of it, that reads ``last_move`` (the persistence baseline); None when none keeps one."""
    members = getattr(model, "members", None)
    if isinstance(members, dict):
        return next((r for m in members.values() if (r := label_rule_of(m)) is not None), None)
    rule = getattr(model, "label_rule", None)
    if rule is not None:
        return dict(rule)
    inner = getattr(model, "model", None)
    return label_rule_of(inner) if inner is not None and inner is not model else None


def resolve(client: Any, registered: str) -> tuple[str, str]:
    """(version, how) of the served version: the ``champion`` alias, else the newest version."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(registered, ALIAS)
        return str(mv.version), f"alias {ALIAS}"
    except MlflowException:
        pass
    versions = client.search_model_versions(f"name = '{registered}'")
    if not versions:
        raise NoModelError(
            f"no version of the registered model {registered!r} in the MLflow registry: train one "
            "(kimp walk-forward / kimp demo) or set KIMP_SERVE_MODEL to a registered kimp model"
        )
    return str(max(int(v.version) for v in versions)), "newest version"


def load_version(client: Any, tracking_uri: str, name: str, version: str, via: str) -> LoadedModel:
    """Download version ``version`` of ``kimp-<name>`` and load it with kimp's loader."""
    import mlflow
    from mlflow.models import Model

    from kimp.models.registry import load_model

    t0 = time.perf_counter()
    registered = registered_name(name)
    mv = client.get_model_version(registered, version)
    # the version's own artifact location (a models:/ URI would be resolved against the process-global
    # registry URI, not this one)
    source = client.get_model_version_download_uri(registered, version)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_uri))
    flavor = Model.load(str(local)).flavors.get("python_function", {})
    data = flavor.get("data")
    if data is None:
        raise NoModelError(f"{registered} version {version} is not a kimp pyfunc model (no data folder)")
    model = load_model(local / data)
    if not callable(getattr(model, "predict_proba_rows", None)):
        raise NoModelError(
            f"{registered} version {version}: {type(model).__name__} has no predict_proba_rows(x), which the "
            "service scores with (kimp.models.base.FittedModel)"
        )
    features = tuple(model.features)
    return LoadedModel(
        name=name,
        registered=registered,
        version=str(version),
        via=via,
        model=model,
        features=features,
        history=_history_of(model),
        load_s=time.perf_counter() - t0,
        loaded_at=datetime.now(UTC),
        feature_set=(mv.tags or {}).get("feature_set"),
    )


class ChampionHolder:
    """The loaded champion, refreshed by ``poll()`` (or a background thread from ``start()``)."""

    def __init__(self, tracking_uri: str, name: str, *, poll_s: float = 10.0, on_load: Any = None) -> None:
        self.tracking_uri, self.name, self.poll_s = tracking_uri, name, poll_s
        self.registered = registered_name(name)
        self.current: LoadedModel | None = None
        self.error: str | None = None
        self.on_load = on_load  # called with each LoadedModel (metrics)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def poll(self) -> bool:
        """Load the registry's current champion if it is not the loaded one. True when a model changed."""
        with self._lock:  # one load at a time
            try:
                client = self._client()
                version, via = resolve(client, self.registered)
                if self.current is not None and self.current.version == version:
                    if self.current.via != via:  # the alias now names the loaded version
                        self.current = dataclasses.replace(self.current, via=via)
                    self.error = None
                    return False
                loaded = load_version(client, self.tracking_uri, self.name, version, via)
            except Exception as exc:  # the registry down or a bad version: keep serving the loaded one
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("champion poll failed", extra={"model": self.registered, "error": self.error})
                return False
            previous = self.current
            self.current = loaded
            self.error = None
        log.info(
            "champion loaded",
            extra={
                "model": loaded.registered,
                "version": loaded.version,
                "via": loaded.via,
                "previous": previous.version if previous else None,
                "load_s": round(loaded.load_s, 3),
            },
        )
        if self.on_load is not None:
            self.on_load(loaded)
        return True

    def get(self) -> LoadedModel:
        current = self.current
        if current is None:
            raise NoModelError(self.error or f"no version of {self.registered} loaded yet")
        return current

    def start(self) -> ChampionHolder:
        """Load now, then poll every ``poll_s`` seconds in a daemon thread."""
        self.poll()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="champion-poll", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
