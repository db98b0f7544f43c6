"""The saved sentiment classifier and how it is served: Rust tokenizer + ONNX Runtime (int8 or fp32), or PyTorch.

A model folder holds ``model.json`` (labels, runtime, max length, base, training figures), ``tokenizer.json``
and either ``model.onnx`` (runtime ``onnx-int8`` / ``onnx-int8-matmul`` / ``onnx-fp32``) or ``hf/`` (runtime ``torch``, a
transformers folder). Serving an ONNX model imports neither torch nor transformers, which is what keeps
loading under a few seconds.

``choose_runtime`` exports the fine-tuned model to ONNX (``torch.onnx.export(..., dynamo=False)``: one file),
quantizes it to int8 two ways (ONNX Runtime dynamic quantization, ``INT8_RECIPES``), times the four
candidates (CPU seconds, one thread) on the early-stopping texts and keeps the fastest whose macro-F1 there is within ``tolerance`` (1 point) of the
PyTorch model's. Its choice and every candidate's figures are written into ``model.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.sentiment import LABELS
from kimp.sentiment.data import normalize
from kimp.sentiment.finetune import encode, pad_batch, torch_predict_proba

MODEL_JSON = "model.json"
TOKENIZER_JSON = "tokenizer.json"
ONNX_FILE = "model.onnx"
HF_DIR = "hf"
RUNTIMES = ("onnx-int8", "onnx-int8-matmul", "onnx-fp32", "torch")
ONNX_RUNTIMES = RUNTIMES[:3]
# int8 recipes (ONNX Runtime dynamic quantization): every quantizable op with one scale per tensor; or the
# MatMuls only (embeddings and attention left in float) with one scale per output channel, which loses less
INT8_RECIPES: dict[str, dict[str, Any]] = {
    "onnx-int8": {},
    "onnx-int8-matmul": {"op_types_to_quantize": ["MatMul"], "per_channel": True},
}
NORMALIZATION = "links-removed-v1"  # kimp.sentiment.data.normalize


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class SentimentModel:
    """A fine-tuned 3-class sentiment classifier: the ``FittedModel`` of the registry's ``sentiment`` spec.

    Built in memory by ``kimp.sentiment.model.fit`` (the ONNX file's bytes, or the PyTorch model) or read
    from a folder by :meth:`load`; :meth:`save` writes the folder either way. ``features`` is the one text
    column it reads when ``predict_proba`` is given a frame.
    """

    name = "sentiment"

    def __init__(
        self,
        meta: dict[str, Any],
        tokenizer: Any,
        *,
        session: Any = None,
        onnx_bytes: bytes | None = None,
        torch_model: Any = None,
        path: Path | None = None,
    ) -> None:
        if (session is None) == (torch_model is None):
            raise ValueError(
                "a sentiment model runs on an ONNX Runtime session or a PyTorch model, one of them"
            )
        self.path = path
        self.meta = meta
        self.tokenizer = tokenizer
        self._session = session
        self._onnx_bytes = onnx_bytes
        self._torch = torch_model
        self.pad_id = int(meta.get("pad_id", 0))
        self.version = str(meta.get("version", ""))
        self.features = [str(meta.get("text_column", "text"))]
        self.history: list[dict[str, float]] = []  # the fine-tune's evaluations (set by fit; not saved here)

    @property
    def runtime(self) -> str:
        return str(self.meta["runtime"])

    @property
    def label(self) -> str:
        """What scored rows record as their model: ``kimp-sentiment`` with the base's name."""
        return f"kimp-sentiment ({self.meta.get('base_name', 'custom base')}, {self.runtime})"

    @classmethod
    def load(cls, path: Path, *, threads: int = 1) -> SentimentModel:
        path = Path(path)
        meta_file = path / MODEL_JSON
        if not meta_file.exists():
            raise FileNotFoundError(
                f"{path}: no {MODEL_JSON}; expected a folder written by `kimp sentiment train`"
            )
        meta = json.loads(meta_file.read_text())
        if meta.get("type") != "sentiment":
            raise ValueError(f"{path}: model.json says type {meta.get('type')!r}, expected 'sentiment'")
        tokenizer = _tokenizer(path / TOKENIZER_JSON, int(meta["max_length"]))
        runtime = meta.get("runtime")
        if runtime in ONNX_RUNTIMES:
            return cls(meta, tokenizer, session=onnx_session(path / ONNX_FILE, threads), path=path)
        if runtime == "torch":
            import torch

            from kimp.sentiment.finetune import load_classifier

            torch.set_num_threads(threads)
            return cls(meta, tokenizer, torch_model=load_classifier(path / HF_DIR).eval(), path=path)
        raise ValueError(f"{path}: unknown runtime {runtime!r} in model.json; expected one of {RUNTIMES}")

    def save(self, path: Path) -> None:
        """Write the model folder (``model.json``, ``tokenizer.json``, ``model.onnx`` or ``hf/``)."""
        path = Path(path)
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime {self.runtime!r}: expected one of {RUNTIMES}")
        path.mkdir(parents=True, exist_ok=True)
        same = self.path is not None and self.path.resolve() == path.resolve()
        if not same:
            for stale in (path / ONNX_FILE, path / HF_DIR):
                if stale.is_dir():
                    shutil.rmtree(stale)
                elif stale.exists():
                    stale.unlink()
            self.tokenizer.save(str(path / TOKENIZER_JSON))
            if self._torch is not None:
                self._torch.save_pretrained(str(path / HF_DIR))
            elif self._onnx_bytes is not None:
                (path / ONNX_FILE).write_bytes(self._onnx_bytes)
            elif self.path is not None:
                shutil.copyfile(self.path / ONNX_FILE, path / ONNX_FILE)
            else:  # pragma: no cover - the constructor's check makes this unreachable
                raise ValueError("an ONNX sentiment model without its file")
        body = {
            **self.meta,
            "type": "sentiment",
            "labels": list(LABELS),
            "normalization": NORMALIZATION,
        }
        (path / MODEL_JSON).write_text(json.dumps(body, indent=2, sort_keys=True, default=str))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode(self.tokenizer, [normalize(t) for t in texts])

    def predict_proba(self, texts: Sequence[str] | pl.DataFrame, batch_size: int = 64) -> np.ndarray:
        """(n, 3) probabilities (p_neg, p_neu, p_pos), in input order; ``texts`` is a list of texts or a frame
        with the model's text column (``features[0]``; null text scores as empty)."""
        if isinstance(texts, pl.DataFrame):
            texts = [t or "" for t in texts[self.features[0]].to_list()]
        ids = self.encode(texts)
        if self._torch is not None:
            return torch_predict_proba(self._torch, ids, self.pad_id, batch_size)
        return onnx_predict_proba(self._session, ids, self.pad_id, batch_size)


def _tokenizer(path: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def onnx_session(model: Path | bytes, threads: int = 1) -> Any:
    """An ONNX Runtime session on ``threads`` intra-op threads, from a file or the file's bytes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def onnx_predict_proba(
    session: Any, ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 64
) -> np.ndarray:
    if not ids:
        return np.zeros((0, len(LABELS)))
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.empty((len(ids), len(LABELS)), dtype=np.float64)
    for i in range(0, len(order), batch_size):
        sel = order[i : i + batch_size]
        x, m = pad_batch([ids[j] for j in sel], pad_id)
        (logits,) = session.run(["logits"], {"input_ids": x, "attention_mask": m})
        out[sel] = _softmax(logits.astype(np.float64))
    return out


def export_onnx(model: Any, path: Path) -> Path:
    """One self-contained ONNX file with dynamic batch and sequence axes (inputs: ids and mask)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    model.eval()
    dummy = (torch.ones(2, 12, dtype=torch.long), torch.ones(2, 12, dtype=torch.long))
    axes = {
        "input_ids": {0: "batch", 1: "seq"},
        "attention_mask": {0: "batch", 1: "seq"},
        "logits": {0: "batch"},
    }
    with torch.inference_mode():
        torch.onnx.export(
            Logits(model),
            dummy,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    return path


def quantize_int8(fp32: Path, int8: Path, recipe: str = "onnx-int8") -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, **INT8_RECIPES[recipe])
    return int8


def _rate(fn: Any, n: int, repeats: int = 2) -> float:
    """Texts per CPU second of this process (one thread), best of ``repeats``: CPU time, not wall time, so
    that what else runs on a shared machine does not decide the choice."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return n / best if best > 0 else float("inf")


def choose_runtime(
    model: Any,
    tokenizer: Any,
    pad_id: int,
    texts: Sequence[str],
    labels: np.ndarray,
    workdir: Path,
    *,
    tolerance: float = 0.01,
) -> tuple[str, dict[str, dict[str, float]], dict[str, Path]]:
    """Export and time the candidates on ``texts`` (one thread); the fastest within ``tolerance`` macro-F1."""
    import torch

    from kimp.sentiment.metrics import classification_metrics

    workdir.mkdir(parents=True, exist_ok=True)
    ids = encode(tokenizer, list(texts))
    y = np.asarray(labels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        figures: dict[str, dict[str, float]] = {}
        files: dict[str, Path] = {}
        probs = torch_predict_proba(model, ids, pad_id)
        figures["torch"] = {
            "macro_f1": classification_metrics(y, probs.argmax(1))["macro_f1"],
            "texts_per_s": _rate(lambda: torch_predict_proba(model, ids, pad_id), len(ids)),
        }
        fp32 = export_onnx(model, workdir / "model-fp32.onnx")
        candidates = [("onnx-fp32", fp32)] + [
            (recipe, quantize_int8(fp32, workdir / f"model-{recipe}.onnx", recipe)) for recipe in INT8_RECIPES
        ]
        for name, file in candidates:
            session = onnx_session(file, 1)
            p = onnx_predict_proba(session, ids, pad_id)
            figures[name] = {
                "macro_f1": classification_metrics(y, p.argmax(1))["macro_f1"],
                "texts_per_s": _rate(lambda s=session: onnx_predict_proba(s, ids, pad_id), len(ids)),
                "max_abs_prob_diff_vs_torch": float(np.abs(p - probs).max()),
                "file_mb": file.stat().st_size / 1e6,
            }
            files[name] = file
    finally:
        torch.set_num_threads(threads)
    floor = figures["torch"]["macro_f1"] - tolerance
    ok = [r for r in RUNTIMES if figures[r]["macro_f1"] >= floor]
    chosen = max(ok, key=lambda r: figures[r]["texts_per_s"])
    return chosen, figures, files
