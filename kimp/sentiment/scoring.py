"""Score text with the fine-tuned model or a lexicon: headline tables (``news_sentiment``) and any CSV.

``Scorer`` is what both paths use: ``finetuned`` (a loaded ``SentimentModel``) or a lexicon (``lm``,
``vader``, ``wordlist``) with its conventional neutral band (0 for the word counts, 0.05 for VADER's
compound score, as its authors recommend). A lexicon's ``p_*`` is the one-hot of its class and its
``score`` is its polarity; the model's ``score`` is ``p_pos - p_neg``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.market_data.schemas import NEWS_SENTIMENT, conform
from kimp.sentiment.lexicons import LEXICONS, Lexicon

MODEL_CHOICES: tuple[str, ...] = ("finetuned", *LEXICONS)
DEFAULT_BANDS: dict[str, float] = {"lm": 0.0, "vader": 0.05, "wordlist": 0.0}
OUTPUT_COLUMNS = ("p_neg", "p_neu", "p_pos", "score")


@dataclass
class Scorer:
    """One way of scoring texts, and the name and version its rows record."""

    name: str
    version: str
    model: Any = None  # SentimentModel for "finetuned"
    lexicon: Lexicon | None = None

    @classmethod
    def for_lexicon(cls, name: str) -> Scorer:
        if name not in LEXICONS:
            raise ValueError(f"unknown lexicon {name!r}: expected one of {', '.join(LEXICONS)}")
        return cls(name=f"lexicon:{name}", version="", lexicon=Lexicon(name, DEFAULT_BANDS[name]))

    @classmethod
    def for_model(cls, model: Any) -> Scorer:
        return cls(name=model.label, version=model.version, model=model)

    def score(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """p_neg, p_neu, p_pos and score per text (empty or missing text: neutral, score 0)."""
        texts = [t or "" for t in texts]
        if self.lexicon is not None:
            polarity = self.lexicon.polarity(texts)
            p = np.eye(3)[self.lexicon.predict(texts)] if texts else np.zeros((0, 3))
            score = polarity
        else:
            p = self.model.predict_proba(texts) if texts else np.zeros((0, 3))
            score = p[:, 2] - p[:, 0]
        return {
            "p_neg": p[:, 0],
            "p_neu": p[:, 1],
            "p_pos": p[:, 2],
            "score": np.asarray(score, dtype=np.float64),
        }


def score_news(news: pl.DataFrame, scorer: Scorer) -> pl.DataFrame:
    """The ``news_sentiment`` rows of a ``news`` table (one per headline, the news row's ``ts`` kept)."""
    if news.height == 0:
        return pl.DataFrame(schema=NEWS_SENTIMENT)
    scores = scorer.score(news["headline"].fill_null("").to_list())
    frame = news.select("ts", "source", "headline").with_columns(
        **{k: pl.Series(k, v, dtype=pl.Float64) for k, v in scores.items()},
        model=pl.lit(scorer.name),
        version=pl.lit(scorer.version),
    )
    return conform(frame, NEWS_SENTIMENT, table="news_sentiment")


def score_csv(input_path: Path, text_column: str, output_path: Path, scorer: Scorer) -> int:
    """Write ``input_path``'s rows plus p_neg, p_neu, p_pos, score to ``output_path``; returns the row count."""
    frame = pl.read_csv(input_path, infer_schema_length=10_000)
    if text_column not in frame.columns:
        raise ValueError(
            f"{input_path}: no column {text_column!r}; it has {frame.columns} (use --text-column)"
        )
    clash = [c for c in OUTPUT_COLUMNS if c in frame.columns]
    if clash:
        raise ValueError(f"{input_path}: already has columns {clash}; rename them before scoring")
    scores = scorer.score(frame[text_column].cast(pl.String).to_list())
    out = frame.with_columns(**{k: pl.Series(k, v, dtype=pl.Float64) for k, v in scores.items()})
    output_path.parent.mkdir(parents=True, exist_ok=True)
    out.write_csv(output_path)
    return out.height
