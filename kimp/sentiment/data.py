"""Labelled text sets for training and evaluation, and the text normalization shared with serving.

The default set is ``../shared/data/real/financial_tweets_sentiment`` (human-labelled finance tweets, MIT):
``sent_train.csv.gz`` is split into a training part and an early-stopping part (seeded, stratified), and
``sent_valid.csv.gz`` is the held-out validation split every reported figure comes from; the model never
sees it while training or choosing its runtime. Any other CSV works with a text column, a label column and
a label mapping; a single CSV is split train / early-stop / validation (80/10/10, seeded, stratified).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from kimp.sentiment import LABELS

# The tweets' own coding: 0 = bearish, 1 = bullish, 2 = neutral (see its PROVENANCE.md).
TWEETS_LABEL_MAP: dict[str, str] = {"0": "negative", "1": "positive", "2": "neutral"}
TWEETS_FILES = ("sent_train.csv.gz", "sent_valid.csv.gz")
# Names that mean a class without a mapping (lower case).
_SYNONYMS: dict[str, str] = {
    "negative": "negative",
    "neg": "negative",
    "bearish": "negative",
    "neutral": "neutral",
    "neu": "neutral",
    "positive": "positive",
    "pos": "positive",
    "bullish": "positive",
}
_URL = re.compile(r"https?://\S+|www\.\S+")
_SPACE = re.compile(r"\s+")


def normalize(text: str | None) -> str:
    """What the model reads: links removed (they carry no tone and cost tokens), whitespace collapsed."""
    if not text:
        return ""
    return _SPACE.sub(" ", _URL.sub(" ", text)).strip()


def parse_label_map(spec: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """``"0=negative,1=positive,2=neutral"`` (or a mapping) -> raw label -> class name; validated."""
    if spec is None:
        return None
    if isinstance(spec, str):
        pairs = [p.strip() for p in spec.split(",") if p.strip()]
        raw: dict[str, str] = {}
        for pair in pairs:
            if "=" not in pair:
                raise ValueError(f"label mapping {spec!r}: {pair!r} is not RAW=CLASS (e.g. 0=negative)")
            key, value = pair.split("=", 1)
            raw[key.strip()] = value.strip()
    else:
        raw = {str(k): str(v) for k, v in spec.items()}
    out = {}
    for key, value in raw.items():
        name = _SYNONYMS.get(value.lower())
        if name is None:
            raise ValueError(f"label mapping: {key}={value!r}; a class must be one of {', '.join(LABELS)}")
        out[key] = name
    return out


@dataclass(frozen=True)
class TextSet:
    """Texts (normalized) and integer labels (index into LABELS)."""

    texts: list[str]
    labels: np.ndarray
    origin: str

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(LABELS)}

    def subset(self, index: np.ndarray, origin: str) -> TextSet:
        return TextSet([self.texts[i] for i in index], self.labels[index], origin)


@dataclass(frozen=True)
class Splits:
    train: TextSet  # the model is fitted on this
    stop: TextSet  # early stopping and the runtime choice
    valid: TextSet  # held out: every reported figure

    def describe(self) -> dict[str, object]:
        return {
            name: {"rows": len(s), "origin": s.origin, **s.counts()}
            for name, s in (("train", self.train), ("stop", self.stop), ("valid", self.valid))
        }


def read_labelled_csv(
    path: Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    label_map: Mapping[str, str] | None = None,
) -> TextSet:
    """Read one CSV (gzip is fine); every label must map to a class, every text must be present."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (expected a CSV with a text and a label column)")
    frame = pl.read_csv(path, infer_schema=False)  # everything as strings: labels compare as text
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: columns {missing} not found; it has {frame.columns}. Use --text-column and --label-column"
        )
    raw = frame[label_column].fill_null("").str.strip_chars()
    mapping = dict(label_map) if label_map else {k: v for k, v in _SYNONYMS.items()}
    if not label_map:  # names as labels; case-insensitive
        raw = raw.str.to_lowercase()
    names = raw.replace_strict(mapping, default=None, return_dtype=pl.String)
    bad = frame.with_row_index("row").filter(names.is_null() | frame[text_column].is_null())
    if bad.height:
        seen = sorted(set(raw.filter(names.is_null()).to_list()))[:10]
        raise ValueError(
            f"{path}: {bad.height} rows have no text or a label without a class (labels {seen}); "
            f"expected labels {sorted(mapping)} or a mapping such as --label-map 0=negative,1=neutral,2=positive. "
            f"First rows: {bad.head(5).select('row', text_column, label_column).rows()}"
        )
    labels = names.replace_strict({n: i for i, n in enumerate(LABELS)}, return_dtype=pl.Int64).to_numpy()
    texts = [normalize(t) for t in frame[text_column].to_list()]
    return TextSet(texts, labels.astype(np.int64), str(path))


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held) with ``fraction`` of each class held out; seeded."""
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        held.append(idx[: max(1, round(fraction * len(idx)))])
    held_idx = np.sort(np.concatenate(held))
    rest = np.setdiff1d(np.arange(len(labels)), held_idx)
    return rest, held_idx


def load_splits(
    data: Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    label_map: Mapping[str, str] | None = None,
    stop_fraction: float = 0.1,
    seed: int = 7,
    max_train: int | None = None,
) -> Splits:
    """Train / early-stop / validation splits of a folder holding the tweets' two files, or of one CSV."""
    data = Path(data)
    if data.is_dir():
        train_file, valid_file = (data / f for f in TWEETS_FILES)
        if not train_file.exists() or not valid_file.exists():
            raise FileNotFoundError(
                f"{data}: expected {TWEETS_FILES[0]} and {TWEETS_FILES[1]} (the tweets' layout), or pass a CSV file"
            )
        mapping = label_map or TWEETS_LABEL_MAP
        kw = {"text_column": text_column, "label_column": label_column, "label_map": mapping}
        full, valid = read_labelled_csv(train_file, **kw), read_labelled_csv(valid_file, **kw)
    else:
        full = read_labelled_csv(
            data, text_column=text_column, label_column=label_column, label_map=label_map
        )
        rest, held = stratified_split(full.labels, 0.1, seed)
        valid = full.subset(held, f"{data} (10% held out, seed {seed})")
        full = full.subset(rest, f"{data} (90%)")
    fit, stop = stratified_split(full.labels, stop_fraction, seed + 1)
    if max_train is not None and len(fit) > max_train:  # tests and quick runs: a seeded sample
        rng = np.random.default_rng(seed + 2)
        fit = np.sort(rng.choice(fit, size=max_train, replace=False))
    return Splits(
        train=full.subset(fit, f"{full.origin} minus early-stop part"),
        stop=full.subset(stop, f"{full.origin}, {stop_fraction:.0%} early-stop part (seed {seed + 1})"),
        valid=valid,
    )


def default_data_dir(shared: Path | None = None) -> Path:
    """The tweets folder beside the repository (../shared/data/real/financial_tweets_sentiment)."""
    from kimp.settings import PROJECT_ROOT

    root = shared or PROJECT_ROOT.parent / "shared"
    return root / "data" / "real" / "financial_tweets_sentiment"
