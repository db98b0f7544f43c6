"""Range reports: unpartitioned assets that aggregate the stored daily partitions of a date range."""

import tempfile
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, AssetsDefinition, Config, MetadataValue, Output, asset
from pydantic import Field

from kimp.reporting.summaries import backtest_overview, summary_rows, walk_forward_overview
from kimp.settings import Settings
from kimp_pipelines.assets.metadata import frame_table, png_markdown
from kimp_pipelines.resources.backtest import BacktestResource
from kimp_pipelines.resources.store import StoreResource


class RangeConfig(Config):
    """Days to aggregate (inclusive, YYYY-MM-DD); empty = every stored day."""

    start: str = ""
    end: str = ""


@asset(group_name="reports", kinds={"polars", "parquet"}, deps=["model_evaluation"])
def walk_forward_report(
    context: AssetExecutionContext, config: RangeConfig, store: StoreResource
) -> Output[pl.DataFrame]:
    """Walk-forward metrics over a range of days: per model, the mean of the daily metrics and the pooled
    counts, beside the baselines (persistence, majority, logistic), with macro-F1 and log-loss over time."""
    from kimp.models.evaluation import metrics_over_time_png

    keys, daily = store.read_range("model_evaluation", config.start or None, config.end or None)
    if not keys:
        raise ValueError(
            f"walk_forward_report: no model_evaluation partitions stored in [{config.start}, {config.end}]"
        )
    report = walk_forward_overview(daily)
    context.log.info(f"walk_forward_report over {len(keys)} day(s) {keys[0]}..{keys[-1]}:\n{report}")
    meta = {"days": len(keys), "first_day": keys[0], "last_day": keys[-1], "summary": frame_table(report)}
    with tempfile.TemporaryDirectory() as tmp:
        png = metrics_over_time_png(daily, Path(tmp) / "metrics.png")
        meta["metrics_over_time"] = png_markdown(Path(png).read_bytes(), "metrics over time")
    return Output(report, metadata=meta)


@asset(group_name="reports", kinds={"polars", "parquet", "html"}, deps=["backtest_report"])
def backtest_summary(
    context: AssetExecutionContext, config: RangeConfig, store: StoreResource, backtest: BacktestResource
) -> Output[pl.DataFrame]:
    """Backtests over a range: metrics per day, strategy, scenario, coin, venue and engine as columns
    (``scope`` = ``day``, reachable with `kimp sql`) and one ``range`` row per strategy, coin, venue,
    engine and scenario computed from the concatenated equity curve of the range (``date`` null: total
    return, Sharpe, Sortino, drawdown spanning days, Calmar, turnover, costs), summarised per strategy and
    scenario in per-day figures, with compounded returns plotted; rewrites the range index page (``<reports>/index.html``) linking every day's and
    scenario's HTML report."""
    from kimp.reporting.index import write_index
    from kimp.reporting.plots import cumulative_returns_png

    keys, daily = store.read_range("backtest_report", config.start or None, config.end or None)
    if not keys:
        raise ValueError(
            f"backtest_summary: no backtest_report partitions stored in [{config.start}, {config.end}]"
        )
    daily = daily.sort("date", "scenario", "strategy", "coin", "kr_venue", "engine")
    summary = summary_rows(daily)
    daily = summary.filter(pl.col("scope") == "day")
    ranged = summary.filter(pl.col("scope") == "range")
    overview = backtest_overview(daily)
    context.log.info(f"backtest_summary over {len(keys)} partition(s):\n{overview}")
    index = write_index(Path(backtest.report_dir).parent, daily)
    context.log.info(f"backtest_summary: range index {index}")
    meta: dict = {
        "partitions": len(keys),
        "first_day": keys[0][:10],
        "last_day": keys[-1][:10],
        "overview": frame_table(overview),
        "range": frame_table(
            ranged.select(
                "strategy",
                "coin",
                "kr_venue",
                "engine",
                "scenario",
                "days",
                "total_return",
                "sharpe",
                "sortino",
                "max_drawdown",
                "calmar",
                "turnover",
                "cost_total",
                "continued",
            )
        ),
        "cumulative_returns": png_markdown(cumulative_returns_png(daily), "compounded daily returns"),
        "html_index": MetadataValue.path(str(index)),
    }
    return Output(summary, metadata=meta)


class ResearchConfig(Config):
    """Predicted days (inclusive, YYYY-MM-DD) and research periods (empty = the settings' periods)."""

    start: str
    end: str
    periods: list[str] = Field(default_factory=list)


def build_research_report(settings: Settings) -> AssetsDefinition:
    """The ``research_report`` asset over the real data of ``settings`` (kimp.research.run_research)."""

    # Its own group: the daily reports_job never runs it (it reads months of real data; run it on purpose,
    # from the UI with a range or with `kimp research`).
    @asset(group_name="research", kinds={"polars", "parquet", "html"})
    def research_report(context: AssetExecutionContext, config: ResearchConfig) -> Output[pl.DataFrame]:
        """Research on the real data: for each period and horizon in the range, macro-F1 and log-loss of the
        members, the ensemble (the validated choice among them and the baselines) and the baselines, the
        after-cost backtest of the predictions and the regression target, with block-bootstrap intervals over
        days and differences to persistence; the Markdown and HTML reports are written beside it
        ($KIMP_HOME/research)."""
        from datetime import date

        from kimp.research import run_research

        chosen = settings.with_research(periods=tuple(config.periods) or None)
        result = run_research(
            chosen,
            date.fromisoformat(config.start),
            date.fromisoformat(config.end),
            progress=context.log.info,
        )
        if result.scores.height == 0 and result.change.height == 0:
            raise ValueError(
                f"research_report: nothing could be scored in {config.start}..{config.end}: "
                + "; ".join(result.notes)
            )
        for note in result.notes:
            context.log.info(note)
        shown = [
            "period",
            "hours",
            "model",
            "rows",
            "days",
            "macro_f1",
            "delta_macro_f1",
            "macro_f1_w",
            "log_loss",
        ]
        meta = {
            "periods": result.scores["period"].n_unique(),
            "scores": frame_table(result.scores.select([c for c in shown if c in result.scores.columns])),
            "backtests": result.backtest.height,
            "markdown": MetadataValue.path(str(result.markdown_path)),
            "html": MetadataValue.path(str(result.html_path)),
        }
        if result.summary.height:
            meta["summary"] = frame_table(result.summary)
        if result.plot_path.exists():
            meta["deltas"] = png_markdown(result.plot_path.read_bytes(), "macro-F1 minus persistence")
        return Output(result.scores, metadata=meta)

    return research_report
