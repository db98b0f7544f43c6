"""The text model as the model registry sees it: the ``sentiment`` spec (kind ``text``, MLflow ``kimp-sentiment``).

``fit(frame, config, *, features, params)`` follows the registry's contract (kimp.models.registry): ``frame``
holds the text column (``features[0]``, ``text`` by default), ``label`` (0 negative, 1 neutral, 2 positive)
and ``split``: fitted on ``train`` rows, early-stopped and its runtime chosen on ``validation`` rows (the
early-stop part of the training file), never reads ``test`` rows (the held-out split every figure is
reported on). ``config`` is a :class:`~kimp.sentiment.finetune.FineTuneConfig` (None: its defaults);
``params`` override its fields. It returns a :class:`~kimp.sentiment.runtime.SentimentModel` in memory
(the fastest runtime within 1 point of macro-F1, kimp.sentiment.runtime.choose_runtime), which
``registry.save_model("sentiment", model, path)`` writes and ``registry.load_model(path, threads=N)`` reads.

``kimp sentiment train`` (kimp.sentiment.training), the ``news_sentiment`` asset and ``kimp sentiment score``
(kimp.sentiment.store) all go through the spec; nothing else fits or loads the model.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.sentiment import LABELS
from kimp.sentiment.data import Splits
from kimp.sentiment.finetune import FineTuneConfig
from kimp.sentiment.runtime import SentimentModel

SPEC_NAME = "sentiment"  # the registry's name; MLflow registers it as kimp-sentiment
TEXT_COLUMN = "text"
SPLITS = ("train", "validation", "test")


def text_frame(splits: Splits, text_column: str = TEXT_COLUMN) -> pl.DataFrame:
    """The training frame of the text model: the fitted part (``train``), the early-stop part
    (``validation``) and the held-out split (``test``) of :class:`~kimp.sentiment.data.Splits`."""
    parts = (("train", splits.train), ("validation", splits.stop), ("test", splits.valid))
    return pl.concat(
        pl.DataFrame(
            {
                text_column: part.texts,
                "label": np.asarray(part.labels, dtype=np.int64),
                "split": [name] * len(part),
            },
            schema={text_column: pl.String, "label": pl.Int64, "split": pl.String},
        )
        for name, part in parts
    )


def _rows(frame: pl.DataFrame, column: str, split: str) -> tuple[list[str], np.ndarray]:
    rows = frame.filter(pl.col("split") == split)
    labels = rows["label"].fill_null(-1).to_numpy().astype(np.int64)
    return [t or "" for t in rows[column].to_list()], labels


def fit(
    frame: pl.DataFrame,
    config: FineTuneConfig | None = None,
    *,
    features: list[str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> SentimentModel:
    """Fine-tune on the ``train`` rows, early-stop and choose the runtime on the ``validation`` rows."""
    from kimp.sentiment.base import DEFAULT_BASE_NAME, default_base, resolve_base
    from kimp.sentiment.finetune import fine_tune
    from kimp.sentiment.runtime import choose_runtime, onnx_session

    config = config or FineTuneConfig()
    if params:
        known = {f.name for f in dataclasses.fields(FineTuneConfig)}
        if unknown := set(params) - known:
            raise ValueError(f"sentiment: unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        config = dataclasses.replace(config, **params)
    features = list(features or [TEXT_COLUMN])
    if len(features) != 1:
        raise ValueError(f"sentiment reads one text column, got features {features}")
    column = features[0]
    missing = [c for c in (column, "label", "split") if c not in frame.columns]
    if missing:
        raise ValueError(f"sentiment training frame: columns {missing} missing; it has {frame.columns}")
    train_texts, train_labels = _rows(frame, column, "train")
    stop_texts, stop_labels = _rows(frame, column, "validation")
    for split, labels in (("train", train_labels), ("validation", stop_labels)):
        if not len(labels):
            raise ValueError(f"sentiment training frame: no {split!r} rows (split column {SPLITS})")
        if (bad := labels[(labels < 0) | (labels >= len(LABELS))]).size:
            raise ValueError(
                f"sentiment training frame: {bad.size} {split} labels outside 0..{len(LABELS) - 1} "
                f"({', '.join(LABELS)}), e.g. {bad[:3].tolist()}"
            )
    base = resolve_base(config.base)
    result, tokenizer = fine_tune(base, train_texts, train_labels, stop_texts, stop_labels, config)
    pad_id = int(result.extra["pad_id"])
    with tempfile.TemporaryDirectory(prefix="kimp-sentiment-") as tmp:
        runtime, figures, files = choose_runtime(
            result.model, tokenizer, pad_id, stop_texts, stop_labels, Path(tmp)
        )
        onnx = files[runtime].read_bytes() if runtime != "torch" else None
    meta: dict[str, Any] = {
        "type": "sentiment",
        "runtime": runtime,
        "text_column": column,
        "base": str(base),
        "base_name": DEFAULT_BASE_NAME if base == default_base() else base.name,
        "max_length": config.max_length,
        "pad_id": pad_id,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": config.seed,
        "rows": {s: int((frame["split"] == s).sum()) for s in SPLITS},
        "finetune": {**result.summary(), "bf16_used": bool(result.extra.get("bf16_used"))},
        "runtime_choice": figures,
    }
    if onnx is not None:
        model = SentimentModel(meta, tokenizer, session=onnx_session(onnx, 1), onnx_bytes=onnx)
        result.model = None  # the PyTorch weights are not served: free them before the caller goes on
    else:
        model = SentimentModel(meta, tokenizer, torch_model=result.model)
    model.history = result.history
    return model


def load(path: Path, *, threads: int = 1) -> SentimentModel:
    """A saved sentiment model (``threads``: ONNX Runtime intra-op threads)."""
    return SentimentModel.load(Path(path), threads=threads)
