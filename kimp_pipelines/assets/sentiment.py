"""``news_sentiment``: every headline of the day scored by the fine-tuned model (kimp.sentiment), per UTC day.

One row per ``news_headlines`` row: ``p_neg``, ``p_neu``, ``p_pos``, ``score = p_pos - p_neg``, and the model
and version that scored it. The headline's publication ``ts`` is kept: a score is a function of the headline
alone (the model was trained on other text, before), so it is known when the headline is. The ``sentiment``
feature family reads this table; without a registered model the asset fails and says how to train one, and
the features of that day keep the family null and flagged rather than scored by something else.
"""

import time
from collections.abc import Iterator
from typing import Any

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from kimp_pipelines.assets.metadata import table_metadata
from kimp_pipelines.resources.sentiment import SentimentResource

GROUP = "sentiment"


def build_sentiment_asset(partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    """The ``news_sentiment`` asset on the daily partitions."""

    @asset(partitions_def=partitions, group_name=GROUP, kinds={"onnx", "polars", "parquet"})
    def news_sentiment(
        context: AssetExecutionContext, news_headlines: pl.DataFrame, sentiment: SentimentResource
    ) -> Iterator[Any]:
        """Headlines of the day with the model's class probabilities and score (p_pos - p_neg)."""
        from kimp.sentiment.scoring import score_news
        from kimp.sentiment.store import NoSentimentModel

        try:
            scorer = sentiment.scorer()
        except NoSentimentModel as err:
            raise Failure(
                description=f"news_sentiment {context.partition_key}: {err}",
                metadata={"how to fix": "kimp sentiment train (fine-tunes and registers kimp-sentiment)"},
            ) from err
        t0 = time.perf_counter()
        scored = score_news(news_headlines, scorer)
        seconds = time.perf_counter() - t0
        mean = float(scored["score"].mean()) if scored.height else None  # type: ignore[arg-type]
        context.log.info(
            f"news_sentiment {context.partition_key}: {scored.height} headlines scored by {scorer.name} "
            f"v{scorer.version} in {seconds:.2f} s"
            + (f", mean score {mean:+.3f}" if mean is not None else "")
        )
        meta = table_metadata(scored)
        meta.update(
            {
                "model": scorer.name,
                "version": scorer.version,
                "mean_score": mean,
                "negative_share": float(
                    (scored["p_neg"] >= scored[["p_neu", "p_pos"]].max_horizontal()).mean()
                )
                if scored.height
                else None,
                "seconds": round(seconds, 3),
                "sample": MetadataValue.md(_sample(scored)),
            }
        )
        yield Output(scored, metadata=meta)

    return news_sentiment


def _sample(scored: pl.DataFrame) -> str:
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   fmt_str_lengths=90, tbl_rows=10):  # fmt: skip
        return str(scored.select("ts", "headline", pl.col("score").round(3)).head(10))
