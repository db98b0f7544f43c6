"""LSTM-with-attention direction model (PyTorch): windows of past bars -> P(down, flat, up).

Network (issue 4): LSTM(h1) -> dropout -> LSTM(h2) -> dropout -> multi-head attention -> dense -> 3-way
softmax. The attention's query is the last step's hidden state and its keys/values are every step of the
window; its output is added to that last state (a residual, so attention refines rather than replaces
the recurrent summary) before the dense layer. Everything it sees is inside the window that ends at the
predicted bar, so it never looks ahead (see ``sequence_data``).

Sizes (``config.lstm_size``):

* ``"prd"``: the PRD exactly: 100 steps, LSTM 256 and 128 units, dropout 0.2, 4 attention heads,
  dense 64.
* ``"cpu"`` (default): 50 steps, LSTM 64 and 32 units, dropout 0.2, 2 heads, dense 32. Sized for 2 CPU
  cores: one epoch over a 30-day window of 1-minute bars (2 coins, 86,400 rows, 50 features) took 82 s
  on 1 thread with the cores shared by other jobs (load ~6; ``benchmarks/bench_lstm.py``, target < 120 s);
  a bare LSTM of these sizes ran at ~25 s/epoch on idle cores. 100 steps or 128/64 units cost ~4x.

Any size can be overridden through ``config.model_params["lstm"]`` (a mapping of ``LSTMSizes`` fields, e.g.
``{"steps": 10, "lstm1": 8}``), which is how tests train a tiny model.

Training choices (documented here because they change what the probabilities mean):

* inputs are standardised with TRAIN-row statistics; a missing feature becomes 0 (= the train mean),
  with no missing-indicator column;
* class weights ``class_weight="sqrt"`` (default): weight_c = sqrt(n / (3 n_c)). Flat is ~70% of labels;
  unweighted cross-entropy lets the network settle on "always flat", fully balanced weights inflate
  p_up/p_down well above their base rates (bad for an ensemble that averages probabilities). The square
  root is the middle ground. ``"balanced"`` and ``"none"`` are available;
* Adam, cosine-annealed learning rate per epoch (from ``lr`` to ``lr * lr_floor``), gradient norm clipped
  at 1; early stopping on the (same weighted) validation loss with ``patience`` epochs; the best epoch's
  weights are restored;
* batch size from the data size unless set: the power of two nearest n_train / 200, clipped to 32..512
  (..2048 on a GPU), i.e. about 200 optimiser steps per epoch;
* reproducible: torch, numpy and the shuffling generator are seeded with ``config.seed`` (the global torch
  RNG is forked, so callers' random state is untouched), deterministic algorithms are switched on while
  training/predicting, and torch uses at most 2 threads. Same seed + same data + same ``threads`` = same
  predictions (the thread count changes float summation order: ~1e-7 differences);
* threads: 1 by default, 2 (the cap) via ``{"threads": 2}``. Measured on this 2-core machine: on idle
  cores 2 threads are faster (~1.5x per batch of 512), but as soon as the cores are shared (Dagster steps
  in parallel, a boosting fit next door) 2 threads tie with 1 on big batches and are up to 300x slower
  on small ones (a 2-sample PRD forward: 8.5 s vs 0.03 s), because an LSTM synchronises its threads at
  every time step. ``OMP_WAIT_POLICY=PASSIVE`` is set before torch loads for the same reason (active
  spinning made 2 threads 6x slower than 1 under load).

Device: ``cuda`` when available, else cpu (``config.model_params["lstm"]["device"]`` overrides). Saved weights are
always stored as cpu tensors and load on whichever device the loading machine has.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # why: see kimp.models.sequence_data

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from kimp.models.base import CLASSES, WalkForwardConfig
from kimp.models.sequence_data import (
    ModelInputError,
    Scaler,
    WindowSource,
    feature_matrix,
    full_window_mask,
    infer_bar_seconds,
    labels_and_splits,
    order_rows,
)

MODEL_NAME = "lstm"
MAX_THREADS = 2
FORMAT_VERSION = 1
_WEIGHTS_FILE = "lstm_state.pt"
_CONFIG_FILE = "lstm_config.json"


@dataclass(frozen=True)
class LSTMSizes:
    """Architecture and training knobs of one sequence model (see the module docstring for defaults)."""

    steps: int = 50
    lstm1: int = 64
    lstm2: int = 32
    heads: int = 2
    dense: int = 32
    dropout: float = 0.2
    lr: float = 1e-3
    lr_floor: float = 0.05  # cosine annealing ends at lr * lr_floor
    weight_decay: float = 0.0
    max_epochs: int = 20
    patience: int = 3
    batch_size: int = 0  # 0 = chosen from the number of training windows
    class_weight: str = "sqrt"  # sqrt | balanced | none
    device: str = ""  # "" = cuda if available else cpu
    threads: int = 1  # intra-op threads, capped at MAX_THREADS; why 1 by default: see the module docstring

    def __post_init__(self) -> None:
        positive = ("steps", "lstm1", "lstm2", "heads", "dense", "max_epochs", "threads")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"LSTMSizes.{name} must be >= 1, got {getattr(self, name)}")
        if self.lstm2 % self.heads:
            raise ValueError(f"LSTMSizes.lstm2 ({self.lstm2}) must be divisible by heads ({self.heads})")
        if not 0 <= self.dropout < 1 or self.lr <= 0 or not 0 < self.lr_floor <= 1 or self.patience < 0:
            raise ValueError(f"bad LSTMSizes training knobs: {self}")
        if self.class_weight not in ("sqrt", "balanced", "none"):
            raise ValueError(f"class_weight must be sqrt|balanced|none, got {self.class_weight!r}")
        if self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 0 (0 = auto), got {self.batch_size}")


PRESETS: dict[str, LSTMSizes] = {
    "cpu": LSTMSizes(),
    "prd": LSTMSizes(steps=100, lstm1=256, lstm2=128, heads=4, dense=64, max_epochs=50, patience=5),
}


def sizes_for(config: WalkForwardConfig, *, max_epochs: int | None = None) -> LSTMSizes:
    """The preset named by ``config.lstm_size`` with ``config.model_params["lstm"]`` overrides applied."""
    overrides = config.params_for(MODEL_NAME)
    known = {f.name for f in fields(LSTMSizes)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"config.model_params['lstm'] has unknown keys {unknown}; known: {sorted(known)}")
    if max_epochs is not None:
        overrides["max_epochs"] = max_epochs
    return replace(PRESETS[config.lstm_size], **overrides)


class AttentionLSTMNet(nn.Module):
    """(batch, steps, features) -> (batch, 3) logits. Softmax is applied by the caller (the loss takes logits)."""

    def __init__(self, n_features: int, sizes: LSTMSizes) -> None:
        super().__init__()
        self.lstm1 = nn.LSTM(n_features, sizes.lstm1, batch_first=True)
        self.drop1 = nn.Dropout(sizes.dropout)
        self.lstm2 = nn.LSTM(sizes.lstm1, sizes.lstm2, batch_first=True)
        self.drop2 = nn.Dropout(sizes.dropout)
        self.attention = nn.MultiheadAttention(sizes.lstm2, sizes.heads, batch_first=True)
        self.dense = nn.Linear(sizes.lstm2, sizes.dense)
        self.out = nn.Linear(sizes.dense, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm1(x)
        h, _ = self.lstm2(self.drop1(h))
        h = self.drop2(h)
        last = h[:, -1:, :]
        context, _ = self.attention(last, h, h, need_weights=False)
        z = torch.relu(self.dense((context + last).squeeze(1)))
        return self.out(z)


@dataclass
class TrainingHistory:
    """What MLflow logs: per-epoch losses and learning rate, the best epoch (0-based) and how it ended."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False
    batch_size: int = 0
    n_train: int = 0
    n_validation: int = 0
    class_weights: list[float] = field(default_factory=list)
    device: str = "cpu"

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "epochs_run": self.epochs_run}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TrainingHistory:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


class LSTMModel:
    """A trained sequence model (implements ``kimp.models.base.FittedModel``)."""

    name = MODEL_NAME

    def __init__(
        self,
        *,
        net: AttentionLSTMNet,
        features: list[str],
        sizes: LSTMSizes,
        scaler: Scaler,
        bar_seconds: int,
        seed: int,
        history: TrainingHistory,
        device: torch.device,
    ) -> None:
        self.net = net
        self.features = list(features)
        self.sizes = sizes
        self.scaler = scaler
        self.bar_seconds = bar_seconds
        self.seed = seed
        self.history = history
        self.device = device

    @property
    def steps(self) -> int:
        return self.sizes.steps

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        """(n, 3) probabilities in ``frame``'s row order; NaN rows where no full gap-free window ends.

        ``frame`` may (and should) carry ``steps - 1`` bars of history before the rows of interest.
        """
        out = np.full((frame.height, len(CLASSES)), np.nan, dtype=np.float64)
        if frame.height == 0:
            return out
        rows = order_rows(frame, model=MODEL_NAME, required=self.features)
        valid = full_window_mask(rows, steps=self.steps, bar_seconds=self.bar_seconds)
        if not valid.any():
            return out
        x = self.scaler.transform(feature_matrix(rows.frame, self.features, model=MODEL_NAME))
        with _torch_runtime(self.sizes.threads, self.device):
            source = WindowSource(x, steps=self.steps, device=self.device)
            ends = torch.from_numpy(np.flatnonzero(valid)).to(self.device)
            probs = _predict(self.net, source, ends, batch_size=4096)
        out[rows.original_row[valid]] = probs
        return out

    def predict_proba_rows(self, x: np.ndarray) -> np.ndarray:
        """NaN rows: a window of ``steps`` bars ends at each scored row, and lone rows carry none (score
        through ``predict_proba`` with the bars before)."""
        return np.full((x.shape[0], len(CLASSES)), np.nan, dtype=np.float64)

    def save(self, path: Path) -> None:
        """Write ``path/`` = weights (``lstm_state.pt``, cpu tensors) + ``lstm_config.json`` (sizes, features,
        scaler statistics, bar length, seed, history)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        torch.save(state, path / _WEIGHTS_FILE)
        config = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "features": self.features,
            "sizes": asdict(self.sizes),
            "scaler": self.scaler.to_json(),
            "bar_seconds": self.bar_seconds,
            "seed": self.seed,
            "history": self.history.to_dict(),
        }
        (path / _CONFIG_FILE).write_text(json.dumps(config, indent=1))


def load_lstm(path: Path) -> LSTMModel:
    """Read a model written by ``LSTMModel.save`` onto this machine's device (cuda if available)."""
    path = Path(path)
    config = json.loads((path / _CONFIG_FILE).read_text())
    if config.get("format_version") != FORMAT_VERSION or config.get("name") != MODEL_NAME:
        raise ValueError(
            f"{path} is not an lstm model of format {FORMAT_VERSION}: {config.get('format_version')}"
        )
    saved_sizes = LSTMSizes(**config["sizes"])
    device = _pick_device(replace(saved_sizes, device=""))
    net = AttentionLSTMNet(len(config["features"]), saved_sizes)
    net.load_state_dict(torch.load(path / _WEIGHTS_FILE, map_location="cpu", weights_only=True))
    net.to(device).eval()
    return LSTMModel(
        net=net,
        features=list(config["features"]),
        sizes=saved_sizes,
        scaler=Scaler.from_json(config["scaler"]),
        bar_seconds=int(config["bar_seconds"]),
        seed=int(config["seed"]),
        history=TrainingHistory.from_dict(config["history"]),
        device=device,
    )


def fit_lstm(
    frame: pl.DataFrame,
    config: WalkForwardConfig,
    *,
    features: list[str],
    label_col: str = "label",
    split_col: str = "split",
    max_epochs: int | None = None,
    progress: bool = False,
) -> LSTMModel:
    """Train on the ``train`` rows, early-stop on the ``validation`` rows; ``test`` rows are never used.

    A row is a training/validation sample when its label is known and a full gap-free window of
    ``steps`` bars of its coin ends at it. Rows of every split still serve as history inside windows
    (their features are known at the time; their labels are not read).
    """
    if not features:
        raise ModelInputError(
            model=MODEL_NAME, problem="no features given", expected="1 to 50 feature columns"
        )
    sizes = sizes_for(config, max_epochs=max_epochs)
    rows = order_rows(frame, model=MODEL_NAME, required=[*features, label_col, split_col])
    labels, splits = labels_and_splits(rows.frame, label_col=label_col, split_col=split_col, model=MODEL_NAME)
    bar_seconds = infer_bar_seconds(rows)
    valid = full_window_mask(rows, steps=sizes.steps, bar_seconds=bar_seconds)
    raw = feature_matrix(rows.frame, features, model=MODEL_NAME)
    is_train = splits == "train"
    if not is_train.any():
        raise ModelInputError(
            model=MODEL_NAME, problem="no train rows", expected=f"rows with {split_col} == 'train'"
        )
    scaler = Scaler.fit(raw[is_train])
    x = scaler.transform(raw)
    train_ends = np.flatnonzero(valid & is_train & (labels >= 0))
    val_ends = np.flatnonzero(valid & (splits == "validation") & (labels >= 0))
    for what, ends in (("train", train_ends), ("validation", val_ends)):
        if ends.size == 0:
            raise ModelInputError(
                model=MODEL_NAME,
                problem=f"no labelled {what} row ends a full window of {sizes.steps} consecutive bars",
                expected=f"{what} rows with a label and {sizes.steps - 1} gap-free bars of history "
                f"(bar = {bar_seconds} s; {frame.height} rows given)",
            )
    device = _pick_device(sizes)
    history = TrainingHistory(
        n_train=int(train_ends.size), n_validation=int(val_ends.size), device=str(device)
    )
    with _torch_runtime(sizes.threads, device), _seeded(config.seed, device):
        net = AttentionLSTMNet(len(features), sizes).to(device)
        _train(net, x, labels, train_ends, val_ends, sizes, config.seed, device, history, progress)
    net.eval()
    return LSTMModel(
        net=net,
        features=list(features),
        sizes=sizes,
        scaler=scaler,
        bar_seconds=bar_seconds,
        seed=config.seed,
        history=history,
        device=device,
    )


def fit_spec(
    frame: pl.DataFrame, config: WalkForwardConfig, *, features: list[str], params: dict[str, object] | None
) -> LSTMModel:
    """The registry's fit for ``lstm`` (kimp.models.registry); sizes come from ``config`` (not tuned)."""
    return fit_lstm(frame, config, features=features)


def auto_batch_size(n_train: int, device: torch.device) -> int:
    """About 200 optimiser steps per epoch, in powers of two; bigger batches only where a GPU absorbs them."""
    upper = 2048 if device.type == "cuda" else 512
    nearest = 2 ** round(math.log2(max(n_train, 1) / 200)) if n_train > 200 else 32
    return int(min(max(nearest, 32), upper))


def class_weights(labels: np.ndarray, scheme: str) -> np.ndarray:
    """Weights per class from the training labels (absent classes get weight 1; see module docstring)."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    if scheme == "none":
        return np.ones(len(CLASSES))
    balanced = np.where(counts > 0, counts.sum() / (len(CLASSES) * np.maximum(counts, 1)), 1.0)
    return balanced if scheme == "balanced" else np.sqrt(balanced)


def _train(
    net: AttentionLSTMNet,
    x: np.ndarray,
    labels: np.ndarray,
    train_ends: np.ndarray,
    val_ends: np.ndarray,
    sizes: LSTMSizes,
    seed: int,
    device: torch.device,
    history: TrainingHistory,
    progress: bool,
) -> None:
    source = WindowSource(x, steps=sizes.steps, device=device)
    y = torch.from_numpy(labels).to(device)
    train_idx = torch.from_numpy(train_ends).to(device)
    val_idx = torch.from_numpy(val_ends).to(device)
    weights = class_weights(labels[train_ends], sizes.class_weight)
    history.class_weights = [float(w) for w in weights]
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))
    batch = sizes.batch_size or auto_batch_size(train_ends.size, device)
    history.batch_size = batch
    optimiser = torch.optim.Adam(net.parameters(), lr=sizes.lr, weight_decay=sizes.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=sizes.max_epochs, eta_min=sizes.lr * sizes.lr_floor
    )
    shuffler = torch.Generator().manual_seed(seed)  # cpu generator: the same order on every device
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(sizes.max_epochs):
        started = time.perf_counter()
        history.lr.append(float(optimiser.param_groups[0]["lr"]))
        net.train()
        order = train_idx[torch.randperm(train_idx.numel(), generator=shuffler).to(device)]
        total, seen = 0.0, 0
        for ends in _progress(order.split(batch), progress, f"lstm epoch {epoch + 1}/{sizes.max_epochs}"):
            logits = net(source.batch(ends))
            loss = loss_fn(logits, y[ends])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
            total += float(loss.detach()) * ends.numel()
            seen += ends.numel()
        schedule.step()
        val_loss, val_acc = _evaluate(net, source, val_idx, y, loss_fn)
        history.train_loss.append(total / seen)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_acc)
        history.epoch_seconds.append(time.perf_counter() - started)
        if val_loss < history.best_val_loss:
            history.best_val_loss, history.best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - history.best_epoch >= sizes.patience:
            history.stopped_early = epoch + 1 < sizes.max_epochs
            break
    if best_state is not None:
        net.load_state_dict(best_state)


@torch.no_grad()
def _evaluate(
    net: nn.Module, source: WindowSource, ends: torch.Tensor, y: torch.Tensor, loss_fn: nn.CrossEntropyLoss
) -> tuple[float, float]:
    """Weighted validation loss (the early-stopping criterion, same objective as training) and accuracy."""
    net.eval()
    logits = torch.cat([net(source.batch(part)) for part in ends.split(4096)])
    target = y[ends]
    loss = float(loss_fn(logits, target))
    accuracy = float((logits.argmax(dim=1) == target).float().mean())
    return loss, accuracy


@torch.no_grad()
def _predict(net: nn.Module, source: WindowSource, ends: torch.Tensor, *, batch_size: int) -> np.ndarray:
    net.eval()
    parts = [torch.softmax(net(source.batch(part)), dim=1).cpu() for part in ends.split(batch_size)]
    return torch.cat(parts).double().numpy()


def _pick_device(sizes: LSTMSizes) -> torch.device:
    if sizes.device:
        return torch.device(sizes.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def _torch_runtime(threads: int, device: torch.device) -> Iterator[None]:
    """At most ``threads`` (<= 2) intra-op threads and deterministic kernels, restored afterwards."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    previous_cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    if device.type == "cuda":
        # cuBLAS needs a fixed workspace to be deterministic; read when the first CUDA handle is created.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.set_num_threads(max(1, min(threads, MAX_THREADS, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic[0], warn_only=previous_deterministic[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous_cudnn
        torch.set_num_threads(previous_threads)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch (weights, dropout) and numpy inside a forked RNG so the caller's random state survives."""
    cuda_devices = [device] if device.type == "cuda" else []
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def _progress(batches: tuple[torch.Tensor, ...], show: bool, label: str) -> Iterator[torch.Tensor]:
    if not show:
        yield from batches
        return
    from tqdm import tqdm

    yield from tqdm(batches, desc=label, leave=False)
