"""The sentiment resource: which kimp-sentiment model scores the news, loaded once per run."""

from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import PrivateAttr


class SentimentResource(ConfigurableResource):
    """``model_dir`` empty: the newest registered version of kimp-sentiment in MLflow (``mlflow_uri``),
    cached under ``cache_dir``; otherwise that local model folder. ``threads``: ONNX Runtime threads."""

    mlflow_uri: str
    cache_dir: str
    model_dir: str = ""
    threads: int = 1

    _scorer: Any = PrivateAttr(default=None)

    def scorer(self) -> Any:
        if self._scorer is None:
            from kimp.sentiment.scoring import Scorer
            from kimp.sentiment.store import load_folder, load_latest

            if self.model_dir:
                model = load_folder(Path(self.model_dir), threads=self.threads)
            else:
                model = load_latest(self.mlflow_uri, Path(self.cache_dir), threads=self.threads)
            self._scorer = Scorer.for_model(model)
        return self._scorer
