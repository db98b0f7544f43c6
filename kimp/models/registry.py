"""The model registry: one :class:`ModelSpec` per model, and everything per model generated from it.

A model is one module plus one registration. The module holds the model (a ``FittedModel``: ``name``,
``features``, ``predict_proba(frame)``, ``predict_proba_rows(x)``, ``save(path)``; see kimp.models.base),
a ``fit`` function and a ``load`` function; the registration is one ``register(ModelSpec(...))`` call, either in the list of built-in models at the end
of this file or in the model's own module named in ``Settings.plugins`` (KIMP_PLUGINS). From the registry
come the Dagster model assets (one per configured member; the baselines share ``baseline_models``), the
ensemble's candidates, the Optuna studies (specs with a search space), MLflow registration (``kimp-<name>``),
the CLI's ``--models`` choices and ``kimp models``.

Functions are given as callables or as ``"module:attribute"`` strings, imported on first use, so that
registering the LSTM does not import torch.

The contract of a spec's functions:

- ``fit(frame, config, *, features, params) -> FittedModel``: ``frame`` is a training frame
  (kimp.models.dataset.training_frame: ``split`` train/validation/test, null for history bars; ``label``;
  every feature column); fit on ``split == "train"`` rows, may early-stop on ``"validation"`` rows, never
  reads ``"test"`` rows. ``features`` is the column list the spec's feature policy chose; ``params`` are
  tuned parameters (the newest Optuna study's best) or None. Seed every random draw from ``config.seed``.
- ``load(path, **options) -> FittedModel``: read what ``FittedModel.save(path)`` wrote (``options``: what the
  kind needs to serve, e.g. ``threads`` for the text model).
- ``search_space(trial) -> dict``: the parameters an Optuna trial tries (passed to ``fit`` as ``params``).

A ``text`` model's frame holds one text column (its ``features``), ``label`` (0 negative, 1 neutral,
2 positive) and ``split`` with the same meaning (kimp.sentiment.model); ``config`` is its own fine-tuning
config, and its ``predict_proba`` takes the frame or a list of texts.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kimp.models.base import FittedModel

KINDS: tuple[str, ...] = ("direction", "regression", "text", "agent")
# kinds whose models score the training frame's feature columns (MLflow serves them as pyfunc with a signature)
FRAME_KINDS: tuple[str, ...] = ("direction", "regression")
ROLES: tuple[str, ...] = ("member", "baseline")
SPEC_FILE = "spec.json"  # written next to every saved model: which spec loads it


@dataclass(frozen=True)
class FeaturePolicy:
    """Which feature columns a model is fitted on.

    - ``all``: every usable feature column of the training rows (numeric, not all-null);
    - ``top_k``: the ``k`` features ranked highest (``importance`` frame, column ``feature``, best first) by
      the first model of ``ranked_by`` trained the same day; when none is, every feature, said so;
    - ``named``: exactly ``names`` (a column the day lacks is all-null for the model).
    """

    mode: str = "all"
    k: int = 0
    ranked_by: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("all", "top_k", "named"):
            raise ValueError(f"feature policy mode must be all, top_k or named, got {self.mode!r}")
        if self.mode == "top_k" and (self.k < 1 or not self.ranked_by):
            raise ValueError("a top_k feature policy needs k >= 1 and the models whose importance ranks")
        if self.mode == "named" and not self.names:
            raise ValueError("a named feature policy needs the feature names")

    def resolve(self, available: list[str], fitted: Mapping[str, FittedModel]) -> tuple[list[str], str]:
        """(features, how they were chosen) given the day's usable columns and the models fitted so far."""
        if self.mode == "named":
            return list(self.names), f"{len(self.names)} named features"
        if self.mode == "top_k":
            for name in self.ranked_by:
                importance = getattr(fitted.get(name), "importance", None)
                if importance is not None and importance.height:
                    ranked = [f for f in importance["feature"].to_list() if f in set(available)]
                    return ranked[: self.k], f"top {self.k} features by {name} importance"
            return list(available), f"all {len(available)} features (none of {list(self.ranked_by)} trained)"
        return list(available), f"all {len(available)} features"


ALL_FEATURES = FeaturePolicy()


def top_k(k: int, *ranked_by: str) -> FeaturePolicy:
    return FeaturePolicy(mode="top_k", k=k, ranked_by=tuple(ranked_by))


def named(*names: str) -> FeaturePolicy:
    return FeaturePolicy(mode="named", names=tuple(names))


Ref = Callable[..., Any] | str


def resolve_ref(ref: Ref) -> Callable[..., Any]:
    """A callable, or the attribute a ``"module:attr.sub"`` string names (imported now, on first use)."""
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model (module docstring for the functions' contract).

    ``kind``: ``direction`` (3-class premium direction, scored in ``predictions``; the kind the daily
    walk-forward trains), ``regression`` (the premium's change in basis points, kimp.models.regression:
    the same training frame and contract, fitted on the labels' ``change``; trained by ``kimp research``
    beside the direction models), ``text`` (``sentiment``: fitted by ``kimp sentiment train`` on labelled
    text, scored daily by the ``news_sentiment`` asset with the newest registered version) and ``agent`` (a
    later kind, with its own asset factory in kimp_pipelines.assets.models). ``role``: ``member`` (its own
    daily asset ``<name>_model``; an ensemble candidate when configured in ``WalkForwardConfig.models``) or ``baseline`` (trained every day in
    ``baseline_models`` and reported beside every model). ``calibrate``: temperature-scale it on the
    validation rows when ``WalkForwardConfig.calibrate``. ``asset_kinds``: Dagster kind tags shown in the UI.
    """

    name: str
    fit: Ref
    load: Ref
    kind: str = "direction"
    role: str = "member"
    features: FeaturePolicy = ALL_FEATURES
    search_space: Ref | None = None
    calibrate: bool = True
    asset_kinds: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or self.name != self.name.lower():
            raise ValueError(f"model name must be lower-case letters, digits and _, got {self.name!r}")
        if self.name == "ensemble":
            raise ValueError("'ensemble' is the name of the day's combination of members")
        if self.kind not in KINDS or self.role not in ROLES:
            raise ValueError(f"{self.name}: kind must be one of {KINDS} and role one of {ROLES}")

    @property
    def tunable(self) -> bool:
        return self.search_space is not None

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Models that must be fitted first (their importance ranks this model's features)."""
        return self.features.ranked_by

    def fit_model(
        self,
        frame: Any,
        config: Any,
        *,
        features: list[str],
        params: dict[str, Any] | None = None,
    ) -> FittedModel:
        return resolve_ref(self.fit)(frame, config, features=features, params=params)  # type: ignore[no-any-return]

    def load_model(self, path: Path, **options: Any) -> FittedModel:
        return resolve_ref(self.load)(Path(path), **options)  # type: ignore[no-any-return]

    def suggest(self, trial: Any) -> dict[str, Any]:
        if self.search_space is None:
            raise ValueError(f"{self.name} has no search space: it is not tuned")
        return resolve_ref(self.search_space)(trial)  # type: ignore[no-any-return]


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add a model; registering a name twice is an error unless ``replace`` (e.g. reloading a plugin)."""
    if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] != spec:
        raise ValueError(f"a model named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}: registered models are {', '.join(names())}") from None


def specs(*, kind: str | None = None, role: str | None = None) -> list[ModelSpec]:
    """Registered specs in registration order, optionally of one kind and/or role."""
    return [
        s for s in _REGISTRY.values() if (kind is None or s.kind == kind) and (role is None or s.role == role)
    ]


def names(*, kind: str | None = None, role: str | None = None) -> list[str]:
    return [s.name for s in specs(kind=kind, role=role)]


def members(models: tuple[str, ...] | list[str]) -> list[ModelSpec]:
    """The configured members in fitting order (a model after those that rank its features); validates
    that each is a registered direction member."""
    chosen = []
    for name in models:
        spec = get(name)
        if spec.role != "member" or spec.kind != "direction":
            raise ValueError(
                f"{name!r} is a {spec.kind} {spec.role}, not a direction model to train as a member "
                f"(members: {', '.join(names(kind='direction', role='member'))})"
            )
        chosen.append(spec)
    order: list[ModelSpec] = []
    pending = list(chosen)
    while pending:
        ready = [s for s in pending if not set(s.depends_on) & {p.name for p in pending if p is not s}]
        if not ready:
            raise ValueError(f"feature rankings of {[s.name for s in pending]} depend on each other")
        order.append(ready[0])
        pending.remove(ready[0])
    return order


# --- saving and loading any model -------------------------------------------------------------------


def save_model(spec_name: str, model: FittedModel, path: Path) -> Path:
    """``model.save(path)`` (a calibrated model also writes its temperature) plus ``spec.json`` naming
    the spec that loads it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save(path)
    (path / SPEC_FILE).write_text(json.dumps({"spec": spec_name}))
    return path


# model.json "type" of folders written before spec.json existed -> the spec (or the ensemble) that reads them
_LEGACY_TYPES = {
    "boosting": "xgboost",
    "majority": "majority",
    "persistence": "persistence",
    "logistic": "logistic",
    "ensemble": "ensemble",
    "sentiment": "sentiment",
}


def saved_spec(path: Path) -> str | None:
    """The spec that loads the model saved at ``path`` (``"ensemble"`` for the day's combination), from its
    ``spec.json``, or for folders written before it existed from their own sidecar (``model.json`` type, the
    LSTM's ``lstm_config.json``); None when ``path`` holds nothing the registry reads."""
    path = Path(path)
    sidecar = path / SPEC_FILE
    if sidecar.exists():
        return str(json.loads(sidecar.read_text())["spec"])
    if (path / "lstm_config.json").exists():
        return "lstm"
    legacy = path / "model.json"
    if not legacy.exists():
        return None
    return _LEGACY_TYPES.get(json.loads(legacy.read_text()).get("type"))


def saved_kind(path: Path) -> str | None:
    """The kind (``direction``, ``text``, ``agent``) of the model saved at ``path``; None when the registry
    cannot read it (no model, or its spec is not registered in this process)."""
    name = saved_spec(path)
    if name == "ensemble":
        return "direction"
    return _REGISTRY[name].kind if name in _REGISTRY else None


def load_model(path: Path, **options: Any) -> FittedModel:
    """Any saved model: the spec named in ``spec.json`` (or the legacy sidecar, :func:`saved_spec`) loads
    it, with the temperature it was saved with. ``options`` go to the spec's ``load`` (e.g. ``threads`` for
    the text model)."""
    from kimp.models.calibration import with_saved_calibration

    path = Path(path)
    name = saved_spec(path)
    if name is None:
        if (path / "model.json").exists():
            kind = json.loads((path / "model.json").read_text()).get("type")
            raise ValueError(f"{path}: unknown model type {kind!r} in model.json")
        raise FileNotFoundError(
            f"{path}: no {SPEC_FILE} or model.json; expected a folder written by save_model()"
        )
    if name == "ensemble":
        from kimp.models.ensemble import EnsembleModel

        return EnsembleModel.load(path)
    return with_saved_calibration(get(name).load_model(path, **options), path)


# --- the built-in models: one registration each -----------------------------------------------------

register(
    ModelSpec(
        name="xgboost",
        fit="kimp.models.boosting:fit_xgboost",
        load="kimp.models.boosting:BoostingModel.load",
        search_space="kimp.models.boosting:xgboost_space",
        asset_kinds=("xgboost",),
        description="XGBoost (hist, 63 bins), early-stopped on validation; tuned weekly",
    )
)
register(
    ModelSpec(
        name="lightgbm",
        fit="kimp.models.boosting:fit_lightgbm",
        load="kimp.models.boosting:BoostingModel.load",
        search_space="kimp.models.boosting:lightgbm_space",
        asset_kinds=("lightgbm",),
        description="LightGBM (deterministic), early-stopped on validation; tuned weekly",
    )
)
register(
    ModelSpec(
        name="lstm",
        fit="kimp.models.sequence:fit_spec",
        load="kimp.models.sequence:load_lstm",
        features=top_k(50, "lightgbm", "xgboost"),
        asset_kinds=("pytorch",),
        description="LSTM with attention over the last bars of the 50 features the boosting model ranks highest",
    )
)
register(
    ModelSpec(
        name="persistence",
        fit="kimp.models.baselines:fit_persistence_spec",
        load="kimp.models.baselines:PersistenceModel.load",
        role="baseline",
        calibrate=False,
        description="the last move over the horizon repeats (with its training hit rate)",
    )
)
register(
    ModelSpec(
        name="majority",
        fit="kimp.models.baselines:fit_majority_spec",
        load="kimp.models.baselines:MajorityModel.load",
        role="baseline",
        calibrate=False,
        description="the training class frequencies for every bar",
    )
)
register(
    ModelSpec(
        name="logistic",
        fit="kimp.models.baselines:fit_logistic_spec",
        load="kimp.models.baselines:LogisticModel.load",
        role="baseline",
        asset_kinds=("scikitlearn",),
        description="multinomial logistic regression on the same features (scaled, L2 chosen on validation)",
    )
)
register(
    ModelSpec(
        name="lightgbm_change",
        fit="kimp.models.regression:fit_lightgbm_change",
        load="kimp.models.regression:ChangeModel.load",
        kind="regression",
        calibrate=False,
        asset_kinds=("lightgbm",),
        description="LightGBM regression of the premium's change over the horizon in basis points",
    )
)
register(
    ModelSpec(
        name="sentiment",
        fit="kimp.sentiment.model:fit",
        load="kimp.sentiment.model:load",
        kind="text",
        calibrate=False,
        asset_kinds=("onnx",),
        description="news sentiment (negative / neutral / positive): a BERT-family encoder fine-tuned on "
        "finance tweets, served with ONNX Runtime; scores news_sentiment",
    )
)
