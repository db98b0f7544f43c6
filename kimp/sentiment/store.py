"""Find and load the newest registered ``kimp-sentiment`` version from MLflow (any tracking server works).

A version's files are downloaded once into a local cache folder (``<cache>/<version>``) and loaded from
there through the model registry (the ``sentiment`` spec's ``load``, kimp.sentiment.model); a registry with
no version is a clear error that says how to make one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kimp.sentiment import REGISTERED_NAME
from kimp.sentiment.runtime import MODEL_JSON, SentimentModel


class NoSentimentModel(RuntimeError):
    """No kimp-sentiment version is registered yet."""


def latest_version(tracking_uri: str, name: str = REGISTERED_NAME) -> Any:
    """The newest ModelVersion of ``name`` (highest version number)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException as err:
        raise NoSentimentModel(f"{name}: cannot read the MLflow registry at {tracking_uri}: {err}") from err
    if not versions:
        raise NoSentimentModel(
            f"no version of {name} is registered in MLflow at {tracking_uri}: run `kimp sentiment train` first"
        )
    return max(versions, key=lambda v: int(v.version))


def model_folder(root: Path) -> Path:
    """The folder under ``root`` (itself included) whose model.json says type 'sentiment'."""
    import json

    for meta in sorted(root.rglob(MODEL_JSON), key=lambda p: len(p.parts)):
        if json.loads(meta.read_text()).get("type") == "sentiment":
            return meta.parent
    raise FileNotFoundError(f"{root}: no sentiment model.json inside (not a kimp-sentiment artifact)")


def fetch_latest(tracking_uri: str, cache_dir: Path, name: str = REGISTERED_NAME) -> tuple[Path, str]:
    """(local folder of the newest version, its version), downloading it into the cache when missing."""
    version = latest_version(tracking_uri, name)
    target = cache_dir / str(version.version)
    if not (target / ".complete").exists():
        import shutil

        from mlflow.artifacts import download_artifacts

        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        download_artifacts(artifact_uri=version.source, dst_path=str(target), tracking_uri=tracking_uri)
        (target / ".complete").touch()
    return model_folder(target), str(version.version)


def load_folder(path: Path, *, threads: int = 1) -> SentimentModel:
    """The text model saved in ``path``, read by the spec its ``spec.json`` names (registry.load_model)."""
    from kimp.models import registry

    path = Path(path)
    kind = registry.saved_kind(path)
    if kind != "text":
        raise ValueError(
            f"{path}: not a saved text model (registry kind {kind!r}); expected a folder written by "
            "`kimp sentiment train`"
        )
    model = registry.load_model(path, threads=threads)
    if not isinstance(model, SentimentModel):
        raise ValueError(f"{path}: the text model's loader returned a {type(model).__name__}")
    return model


def load_latest(tracking_uri: str, cache_dir: Path, *, threads: int = 1) -> SentimentModel:
    folder, version = fetch_latest(tracking_uri, cache_dir)
    model = load_folder(folder, threads=threads)
    model.version = version
    return model
