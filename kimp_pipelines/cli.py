"""The ``kimp`` command line: demo, materialize, walk-forward, research, backtest, sql, sentiment, stream,
serve, ui."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import textwrap
import time
from datetime import date, timedelta

import click

from kimp.errors import KimpError
from kimp.models import registry
from kimp.settings import PROJECT_ROOT, BacktestSettings, Settings
from kimp.timeutil import days_between
from kimp_pipelines.cli_options import day_option as _day
from kimp_pipelines.cli_options import settings_from_env as _settings
from kimp_pipelines.sentiment_cli import sentiment
from kimp_pipelines.serve_cli import serve, stream

DEMO_RANGE = (date(2024, 3, 1), date(2024, 3, 5))  # simulated: any dates work; fixed so results repeat


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show Dagster's own logs.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """kimp: research and execution platform for the Korean kimchi premium."""
    # Without -v Dagster's console stays quiet (no stack traces): a failed day is reported as one paragraph
    # and the runs' warnings as lines (kimp_pipelines.runner); -v shows Dagster's logs, traces included.
    ctx.obj = {"log_level": "INFO" if verbose else "CRITICAL"}
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore")
        # MLflow sets its own logger to INFO when imported; these children print a line per registered model
        # ("Validating input example against model signature") and per new tracking database: noise here.
        for name in ("mlflow.pyfunc", "mlflow.models", "mlflow.store.db.utils"):
            logging.getLogger(name).setLevel(logging.WARNING)


@main.command()
@click.option("--start", callback=_day, help="First day (YYYY-MM-DD, UTC).")
@click.option("--end", callback=_day, help="Last day, inclusive.")
@click.option(
    "--select", default=None, help="Dagster asset selection, e.g. 'kimchi_premium' or '+kimchi_premium'."
)
@click.option(
    "--allow-shrink",
    is_flag=True,
    help="Replace stored partitions even with less data (fewer series, rows or hours); refused otherwise.",
)
def materialize(start: date | None, end: date | None, select: str | None, allow_shrink: bool) -> None:
    """Materialize a range of daily partitions through Dagster, one run per day."""
    if start is None or end is None:
        raise click.UsageError("--start and --end are required")
    _materialize(dataclasses.replace(_settings(), allow_shrink=allow_shrink), start, end, select)


def _days(start: date, end: date) -> list[date]:
    try:
        return days_between(start, end)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _materialize(
    settings: Settings,
    start: date,
    end: date,
    select: str | None,
    *,
    stage_days: dict[str, list[date]] | None = None,
    run_configs: dict[str, dict] | None = None,
    stage_select: dict[str, str] | None = None,
    reuse: bool = False,
) -> None:
    log_level = (click.get_current_context().find_root().obj or {}).get("log_level", "WARNING")
    from kimp_pipelines.runner import materialize_range

    days = _days(start, end)
    click.echo(
        f"kimp: materializing {len(days)} day(s) {start}..{end} from the {settings.source} source "
        f"into {settings.storage_uri} (Dagster home {settings.dagster_home})",
        err=True,
    )
    t0 = time.perf_counter()
    try:
        outcome = materialize_range(
            settings,
            stage_days or days,
            select,
            stages=tuple(stage_days) if stage_days else None,
            run_configs=run_configs,
            stage_select=stage_select,
            log_level=log_level,
            reuse=reuse,
        )
    except ValueError as exc:  # e.g. a selection that matches nothing
        raise click.ClickException(str(exc)) from None
    click.echo(f"kimp: {outcome.summary()} in {time.perf_counter() - t0:.1f}s", err=True)
    reused = outcome.reuse_summary()
    if reused:
        click.echo(f"kimp: {reused} (--recompute redoes them)", err=True)
    for warning in outcome.warnings:
        click.echo(f"  warning: {warning}", err=True)
    if not outcome.ok:
        for paragraph in outcome.problems:
            click.echo(
                "\n" + textwrap.fill(paragraph, width=110, break_long_words=False, break_on_hyphens=False),
                err=True,
            )
        sys.exit(1)


def _report_config(asset: str, start: date, end: date) -> dict[str, dict]:
    return {"ops": {asset: {"config": {"start": start.isoformat(), "end": end.isoformat()}}}}


@main.command("walk-forward")
@click.option("--start", callback=_day, required=True, help="First predicted day (YYYY-MM-DD, UTC).")
@click.option("--end", callback=_day, required=True, help="Last predicted day, inclusive.")
@click.option(
    "--window-days", type=click.IntRange(1, 365), help="Training window per day [KIMP_WF_WINDOW_DAYS]."
)
@click.option(
    "--horizon", type=click.IntRange(60, 1440), help="Horizon in minutes [KIMP_WF_HORIZON_MINUTES]."
)
@click.option("--trials", type=click.IntRange(1, 1000), help="Optuna trials per study [KIMP_WF_TRIALS].")
@click.option(
    "--models",
    help=f"Comma-separated members to train, of {','.join(registry.names(kind='direction', role='member'))} and any a plugin "
    "registers (`kimp models` lists them) [KIMP_WF_MODELS].",
)
@click.option("--lstm-size", type=click.Choice(["cpu", "prd"]), help="LSTM size [KIMP_WF_LSTM_SIZE].")
@click.option(
    "--kr-venue", type=click.Choice(["upbit", "bithumb"]), help="Korean venue to predict [KIMP_WF_KR_VENUE]."
)
@click.option(
    "--retune/--no-retune", default=False, help="Run an Optuna study on the first day even if one exists."
)
@click.option(
    "--feature-warmup/--no-feature-warmup",
    default=True,
    help="Also materialize the market data of the features' look-back before the training window.",
)
@click.option(
    "--recompute",
    is_flag=True,
    help="Recompute market data and features even where they are stored from the same code and inputs.",
)
def walk_forward(
    start: date,
    end: date,
    window_days: int | None,
    horizon: int | None,
    trials: int | None,
    models: str | None,
    lstm_size: str | None,
    kr_venue: str | None,
    retune: bool,
    feature_warmup: bool,
    recompute: bool,
) -> None:
    """Walk-forward study: for each day D in the range, train on the window before D minus the embargo,
    predict D out of sample, evaluate against the baselines; then a report over the range.

    Market data and features are materialized first for the training window and the features'
    look-back before START; days already stored from the same code version and inputs are reused (and
    counted), unless --recompute."""
    try:
        settings = _settings().with_walk_forward(
            window_days=window_days,
            horizon_minutes=horizon,
            n_trials=trials,
            models=_names(models) if models is not None else None,
            lstm_size=lstm_size,
            kr_venue=kr_venue,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    _check_models(settings)
    _run_walk_forward(settings, start, end, retune=retune, feature_warmup=feature_warmup, reuse=not recompute)


def _check_models(settings: Settings) -> None:
    """The configured members must be registered (after the plugins have registered theirs)."""
    from kimp_pipelines.definitions import load_plugins

    try:
        load_plugins(settings)
        registry.members(settings.walk_forward.models)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--models / KIMP_WF_MODELS") from None


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in raw.split(",") if n.strip())
    if not names:
        raise click.BadParameter(f"{raw!r}: name at least one")
    return names


def _run_walk_forward(
    settings: Settings, start: date, end: date, *, retune: bool, feature_warmup: bool, reuse: bool = True
) -> None:
    wf = settings.walk_forward
    from kimp.features import lookback_days
    from kimp.models.studies import latest_study_day

    feature_start = start - timedelta(days=wf.window_days + 1)
    warmup = max(lookback_days().values()) if feature_warmup else 0
    data_start = feature_start - timedelta(days=warmup)
    stage_days: dict[str, list[date]] = {
        "market_data_job": _days(data_start, end),
        "features_job": _days(feature_start, end),
    }
    if retune or latest_study_day(settings.optuna_storage, start, wf) is None:
        stage_days["tuning_job"] = [start]
    stage_days["training_job"] = _days(start, end)
    stage_days["reports_job"] = [end]
    click.echo(
        f"kimp: walk-forward {start}..{end}: horizon {wf.horizon_minutes} min, window {wf.window_days} d, "
        f"embargo {wf.embargo} min, {wf.kr_venue} {wf.premium_column}, models {', '.join(wf.models)}, "
        f"{wf.n_trials} Optuna trials"
        + ("" if feature_warmup else "; no feature warm-up (long-window features start null)"),
        err=True,
    )
    _materialize(
        settings,
        data_start,
        end,
        None,
        stage_days=stage_days,
        run_configs={"reports_job": _report_config("walk_forward_report", start, end)},
        stage_select={"reports_job": "walk_forward_report"},
        reuse=reuse,
    )
    _print_table(settings, "walk_forward_report", "walk-forward metrics over the range (model vs baselines)")


@main.command()
@click.option("--start", callback=_day, required=True, help="First day (YYYY-MM-DD, UTC).")
@click.option("--end", callback=_day, required=True, help="Last day, inclusive.")
@click.option(
    "--strategy",
    default=None,
    help="Comma-separated strategies of the registry (kimp.backtest.strategies): zscore (the rule-based "
    "baseline), a model's predictions (ensemble, xgboost, ...), the RL agents ppo, dqn, rl (trained for "
    f"the days first unless stored) [KIMP_BT_STRATEGIES, default {','.join(BacktestSettings.strategies)}].",
)
@click.option("--with-data/--no-data", default=True, help="Materialize market data (and features) first.")
@click.option(
    "--recompute",
    is_flag=True,
    help="Recompute market data and features even where they are stored from the same code and inputs.",
)
def backtest(start: date, end: date, strategy: str | None, with_data: bool, recompute: bool) -> None:
    """Backtest the kimchi-premium spread trade day by day under every market scenario, then a summary
    over the range (`backtest_summary`, also an HTML report)."""
    settings = _settings()
    if strategy:
        settings = settings.with_backtest(strategies=_names(strategy))
    _check_strategies(settings)
    _run_backtest(settings, start, end, with_data=with_data, reuse=not recompute)


def _check_strategies(settings: Settings) -> None:
    """Every configured strategy is in the registry (plugins loaded first), else a usage error."""
    from kimp.backtest import strategies
    from kimp_pipelines.definitions import load_plugins

    try:
        load_plugins(settings)
        strategies.strategies(settings.backtest.strategies)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--strategy / KIMP_BT_STRATEGIES") from None


def _run_backtest(settings: Settings, start: date, end: date, *, with_data: bool, reuse: bool = True) -> None:
    from kimp.backtest import strategies
    from kimp.storage import ParquetStore

    stage_days: dict[str, list[date]] = {}
    stage_select = {"reports_job": "backtest_summary"}
    if with_data:
        stage_days["market_data_job"] = _days(start, end)
    # The agents the strategies act with: trained for the days where none is stored (reused otherwise).
    wanted = [s.name for s in strategies.strategies(settings.backtest.strategies) if s.kind == "agent"]
    from kimp.rl.config import AGENTS

    kinds = tuple(k for k in AGENTS if k in wanted or "rl" in wanted)  # rl picks among all of them
    store = ParquetStore(settings.storage_uri)
    missing = {
        k: [d for d in _days(start, end) if not store.exists(f"{k}_agent", d.isoformat())] for k in kinds
    }
    todo = tuple(k for k in kinds if missing[k])
    days_needed: list[date] = sorted({d for k in todo for d in missing[k]})
    if todo:
        agent_days, selection = _agent_stages(settings, start, end, todo, with_data=with_data)
        if "market_data_job" in agent_days:
            stage_days["market_data_job"] = sorted(
                set(stage_days.get("market_data_job", [])) | set(agent_days["market_data_job"])
            )
        stage_days["agents_job"] = days_needed
        stage_select["agents_job"] = selection
    if kinds:  # one agents run per day trains every selected agent of that day
        trained = len(todo) * len(days_needed)
        click.echo(
            f"kimp: agents {', '.join(kinds)} for {len(_days(start, end))} day(s): {trained} to train, "
            f"{len(kinds) * len(_days(start, end)) - trained} stored and reused",
            err=True,
        )
    stage_days["backtest_job"] = _days(start, end)
    stage_days["reports_job"] = [end]
    first = min(min(days) for days in stage_days.values())
    _materialize(
        settings,
        first,
        end,
        None,
        stage_days=stage_days,
        run_configs={"reports_job": _report_config("backtest_summary", start, end)},
        stage_select=stage_select,
        reuse=reuse,
    )
    _print_table(settings, "backtest_summary", "backtest summary (per strategy and scenario over the range)")


@main.group()
def rl() -> None:
    """Reinforcement-learning agents: PPO and a Dueling DQN, trained on the backtester's own costs."""


@rl.command("train")
@click.option(
    "--agent",
    "agents",
    type=click.Choice(["ppo", "dqn"]),
    multiple=True,
    required=True,
    help="Agent(s) to train.",
)
@click.option(
    "--start", callback=_day, required=True, help="First day whose agent to train (YYYY-MM-DD, UTC)."
)
@click.option("--end", callback=_day, required=True, help="Last day, inclusive.")
@click.option(
    "--window-days", type=click.IntRange(1, 365), help="Training window per day [KIMP_RL_WINDOW_DAYS]."
)
@click.option(
    "--timesteps", type=click.IntRange(1, 100_000_000), help="Environment steps [KIMP_RL_TIMESTEPS]."
)
@click.option(
    "--max-train-seconds", type=click.FloatRange(1, 86_400), help="Time budget [KIMP_RL_MAX_TRAIN_SECONDS]."
)
@click.option("--with-data/--no-data", default=True, help="Materialize the windows' market data first.")
def rl_train(
    agents: tuple[str, ...],
    start: date,
    end: date,
    window_days: int | None,
    timesteps: int | None,
    max_train_seconds: float | None,
    with_data: bool,
) -> None:
    """Train the agent(s) of each day START..END on the window before the day minus the embargo, over
    the backtest's markets (its coins and Korean venues), and register them in MLflow (kimp-ppo, kimp-dqn)."""
    try:
        settings = _settings().with_rl(
            window_days=window_days, total_timesteps=timesteps, max_train_seconds=max_train_seconds
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    _run_agents(settings, start, end, agents, with_data=with_data)
    _print_agents(settings, start, end, agents)


def _agent_stages(
    settings: Settings, start: date, end: date, agents: tuple[str, ...], *, with_data: bool
) -> tuple[dict[str, list[date]], str]:
    """The market data of the agents' windows (and their warm-up day) and the agents' own days."""
    stage_days: dict[str, list[date]] = {}
    if with_data:  # the window and its warm-up day; day D itself is not read
        window = settings.rl.window_days + 1
        stage_days["market_data_job"] = _days(start - timedelta(days=window), end - timedelta(days=1))
    stage_days["agents_job"] = _days(start, end)
    return stage_days, " or ".join(f"key:{a}_agent" for a in agents)


def _run_agents(
    settings: Settings, start: date, end: date, agents: tuple[str, ...], *, with_data: bool
) -> None:
    rl = settings.rl
    click.echo(
        f"kimp: RL agents {', '.join(agents)} for {start}..{end}: window {rl.window_days} d, embargo "
        f"{rl.embargo_minutes} min, {rl.total_timesteps:,} steps or {rl.max_train_seconds:g} s each, "
        f"{'/'.join(settings.backtest.coins)} on {'/'.join(settings.backtest.kr_venues)}",
        err=True,
    )
    stage_days, selection = _agent_stages(settings, start, end, agents, with_data=with_data)
    first = min(min(days) for days in stage_days.values())
    _materialize(settings, first, end, None, stage_days=stage_days, stage_select={"agents_job": selection})


def _print_agents(settings: Settings, start: date, end: date, agents: tuple[str, ...]) -> None:
    import polars as pl

    from kimp.storage import ParquetStore

    store = ParquetStore(str(settings.storage_uri))
    rows = [
        store.read(f"{agent}_agent", day.isoformat())
        for agent in agents
        for day in _days(start, end)
        if store.exists(f"{agent}_agent", day.isoformat())
    ]
    if not rows:
        return
    frame = pl.concat(rows, how="vertical_relaxed").select(
        "day", "agent", "train_episodes", "steps", "train_seconds", "budget_hit", "val_total_return",
        "val_sharpe", "val_kill_switch", "registered_version",
    )  # fmt: skip
    with pl.Config(
        tbl_rows=60, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, float_precision=4
    ):
        click.echo(f"\nRL agents (validation on the window's last days):\n{frame}")


def _print_table(settings: Settings, table: str, title: str) -> None:
    from kimp.storage import ParquetStore

    store = ParquetStore(settings.storage_uri)
    if not store.exists(table, None):
        return
    import polars as pl

    frame = store.read(table, None)
    ranged = None
    if table == "backtest_summary":  # one line per strategy, scenario and engine; the days are in `kimp sql`
        from kimp.reporting.summaries import backtest_overview

        if "scope" in frame.columns:
            ranged = frame.filter(pl.col("scope") == "range").select(
                "strategy", "coin", "kr_venue", "engine", "scenario", "days", "total_return", "sharpe",
                "max_drawdown", "turnover", "cost_total",
            )  # fmt: skip
            frame = frame.filter(pl.col("scope") == "day")
        frame = backtest_overview(frame)
    with pl.Config(
        tbl_rows=60,
        tbl_cols=12,
        tbl_width_chars=160,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        float_precision=4,
    ):
        click.echo(f"\n{title}:\n{frame}")
        if ranged is not None and ranged.height:
            click.echo(f"\nover the range, as one run per market (scope=range):\n{ranged}")


@main.command()
@click.option("--start", callback=_day, required=True, help="First predicted day (YYYY-MM-DD, UTC).")
@click.option("--end", callback=_day, required=True, help="Last predicted day, inclusive.")
@click.option(
    "--period",
    "periods",
    multiple=True,
    help="A research period (repeat for several; default all) [KIMP_RESEARCH_PERIODS]: "
    "hourly_2018_euphoria, hourly_2019_calm, daily_2021, daily_2024_2025, intraday_2025_5m.",
)
@click.option(
    "--horizon",
    "horizons",
    type=click.IntRange(1, 24),
    multiple=True,
    help="Horizon in hours, repeatable (default each period's own) [KIMP_RESEARCH_HORIZONS].",
)
@click.option("--models", help="Comma-separated members to train [KIMP_RESEARCH_MODELS, default lightgbm].")
@click.option(
    "--target",
    "targets",
    type=click.Choice(["premium", "price", "change"]),
    multiple=True,
    help="Direction of the premium and/or of the Korean price, and/or the premium's change in basis points "
    "(regression), repeatable [KIMP_RESEARCH_TARGETS, default premium].",
)
@click.option(
    "--retrain-every",
    type=click.IntRange(1, 365),
    help="Days between trainings (default each period's own) [KIMP_RESEARCH_RETRAIN_DAYS].",
)
@click.option(
    "--window-days", type=click.IntRange(1, 730), help="Training window [KIMP_RESEARCH_WINDOW_DAYS]."
)
@click.option(
    "--max-days", type=click.IntRange(1, 3650), help="Only the last N predicted days of each period."
)
@click.option("--bootstrap", type=click.IntRange(10, 100_000), help="Bootstrap samples [default 1000].")
@click.option(
    "--half-life-days",
    type=click.FloatRange(min=0, min_open=True),
    help="Age-decay sample weights: a training row's weight halves every N days [KIMP_WF_HALF_LIFE_DAYS; "
    "default off].",
)
def research(
    start: date,
    end: date,
    periods: tuple[str, ...],
    horizons: tuple[int, ...],
    models: str | None,
    targets: tuple[str, ...],
    retrain_every: int | None,
    window_days: int | None,
    max_days: int | None,
    bootstrap: int | None,
    half_life_days: float | None,
) -> None:
    """Research on the real data (KIMP_DATA_DIR = the shared real-data folder): for each period and horizon,
    the walk-forward of the members, the ensemble and the baselines over the period's days inside
    START..END, macro-F1 and log-loss with block-bootstrap intervals over days, and the report
    ($KIMP_HOME/research/research.md and .html)."""
    from kimp.research import periods as period_registry
    from kimp.research import run_research

    try:
        settings = _settings().with_research(
            periods=tuple(p.strip().lower() for p in periods) or None,
            horizons_h=horizons or None,
            models=_names(models) if models else None,
            targets=targets or None,
            retrain_every_days=retrain_every,
            window_days=window_days,
            max_days=max_days,
            bootstrap_samples=bootstrap,
        )
        if half_life_days is not None:
            settings = settings.with_walk_forward(sample_half_life_days=half_life_days)
        for name in settings.research.periods:
            period_registry.get(name)
        registry.members(settings.research.models)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not settings.data_dir:
        raise click.UsageError("kimp research reads real data: set KIMP_DATA_DIR (e.g. ../shared/data/real)")
    click.echo(
        f"kimp: research {start}..{end} on {settings.data_dir}: periods "
        f"{', '.join(settings.research.periods or period_registry.PERIODS)}; members "
        f"{', '.join(settings.research.models)} + ensemble + baselines",
        err=True,
    )
    t0 = time.perf_counter()
    try:
        result = run_research(settings, start, end, progress=lambda m: click.echo(f"  {m}", err=True))
    except (ValueError, KimpError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"kimp: research done in {time.perf_counter() - t0:.0f}s", err=True)
    click.echo(result.markdown_path.read_text())
    click.echo(f"report: {result.markdown_path}\n        {result.html_path}")


@main.command("models")
def models_command() -> None:
    """List the registered models: what each is, how its features are chosen, whether it is tuned, and
    whether the walk-forward trains it (KIMP_WF_MODELS; baselines always)."""
    from kimp_pipelines.definitions import load_plugins

    settings = _settings()
    try:
        load_plugins(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    import polars as pl

    configured = set(settings.walk_forward.models)
    rows = [
        {
            "model": s.name,
            "kind": s.kind,
            "role": s.role,
            "trained daily": "yes" if s.role == "baseline" or s.name in configured else "no",
            "features": s.features.mode
            if s.features.mode != "top_k"
            else f"top {s.features.k} by {'/'.join(s.features.ranked_by)}",
            "tuned": "yes" if s.tunable else "no",
            "calibrated": "yes" if s.calibrate else "no",
            "description": s.description,
        }
        for s in registry.specs()
    ]
    with pl.Config(
        tbl_rows=100,
        tbl_cols=10,
        tbl_width_chars=200,
        fmt_str_lengths=90,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        click.echo(pl.DataFrame(rows))


@main.command()
@click.argument("query")
def sql(query: str) -> None:
    """Run a read-only DuckDB QUERY over every materialized table (one view per asset) and print CSV.

    Only queries run (SELECT, FROM, WITH, DESCRIBE, ...): statements that could write (COPY, EXPORT, ATTACH,
    INSTALL, SET, CREATE, ...) are refused, and DuckDB itself has no file access."""
    import duckdb

    from kimp.storage import ParquetStore
    from kimp.storage.sql import ReadOnlyError, query_csv

    settings = _settings()
    try:
        click.echo(query_csv(ParquetStore(settings.storage_uri), query), nl=False)
    except ReadOnlyError as exc:
        raise click.ClickException(str(exc)) from None
    except duckdb.PermissionException as exc:  # the engine's own lock-down (no file access at all)
        raise click.ClickException(
            f"kimp sql is read-only and reads only the store's tables: {exc}"
        ) from None
    except Exception as exc:  # duckdb errors already say what is wrong with the query
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@main.command()
@click.option("--start", callback=_day, help=f"First day (default {DEMO_RANGE[0]} on the simulated market).")
@click.option("--end", callback=_day, help=f"Last day (default {DEMO_RANGE[1]} on the simulated market).")
def demo(start: date | None, end: date | None) -> None:
    """The main job, end to end on a short range: market data and premium, features, a short walk-forward
    (tune, train, predict, evaluate against the baselines) over the last days, and their backtests."""
    settings = _settings()
    # Demo sizes, unless set through their variables: a 2-day training window and a 2-trial study.
    demo_sizes = {"KIMP_WF_WINDOW_DAYS": ("window_days", 2), "KIMP_WF_TRIALS": ("n_trials", 2)}
    settings = settings.with_walk_forward(
        **{field: value for var, (field, value) in demo_sizes.items() if var not in settings.env_values}
    )
    if start is None or end is None:
        if settings.source != "simulated":
            raise click.UsageError(
                f"with KIMP_SOURCE={settings.source}, give --start and --end: days the data covers "
                "(e.g. --start 2018-01-02 --end 2018-01-08 for ../shared/data/real)"
            )
        start, end = DEMO_RANGE
    wf = settings.walk_forward
    first_predicted = start + timedelta(days=wf.window_days + 1)
    if first_predicted > end:
        raise click.UsageError(
            f"the demo trains on {wf.window_days + 1} day(s) before it predicts: give at least "
            f"{wf.window_days + 2} days (--end {first_predicted} or later)"
        )
    _run_walk_forward(settings, first_predicted, end, retune=False, feature_warmup=False)
    _run_backtest(settings, first_predicted, end, with_data=False)
    from kimp.storage import ParquetStore
    from kimp.storage.sql import query_csv

    store = ParquetStore(settings.storage_uri)
    summary = query_csv(
        store,
        "SELECT coin, kr_venue, CAST(ts AS DATE) AS day, count(*) AS bars, "
        "round(avg(premium_fx) * 100, 3) AS premium_fx_pct, round(avg(premium_usdt) * 100, 3) AS premium_usdt_pct "
        f"FROM kimchi_premium WHERE ts >= '{start}' AND ts < DATE '{end}' + INTERVAL 1 DAY "
        "GROUP BY ALL ORDER BY ALL",
    )
    click.echo("\nDaily mean kimchi premium (from `kimp sql`):\n" + summary)
    click.echo(
        "Where to look:\n"
        f"  tables (Parquet, one file per day): {settings.storage_uri}\n"
        f"    {', '.join(store.tables())}\n"
        f'  query them:  .venv/bin/kimp sql "SELECT model, macro_f1, log_loss FROM model_evaluation"\n'
        f"  backtest reports (HTML): {settings.home / 'reports' / 'index.html'} (every day and scenario)\n"
        f"  MLflow runs and registered models: .venv/bin/mlflow ui --backend-store-uri {settings.mlflow_uri}\n"
        f"    then {_mlflow_runs_link(settings)}\n"
        f"  Dagster UI:  .venv/bin/kimp ui, then Overview -> Timeline, or the demo's days of an asset:\n"
        f"    http://127.0.0.1:3000/assets/kimchi_premium?view=partitions&default_range=[{start}...{end}]\n"
        f"  Dagster instance (runs, events): {settings.dagster_home}"
    )
    from kimp_pipelines.serve_cli import live_demo

    live_demo(settings)


def _mlflow_runs_link(settings: Settings) -> str:
    """The experiment's runs in MLflow's UI. MLflow 3.17 opens every experiment in its GenAI view (a
    browser-wide choice, whatever the experiment's kind tag says): the link asks for model training."""
    import mlflow

    experiment = mlflow.MlflowClient(tracking_uri=str(settings.mlflow_uri)).get_experiment_by_name("kimp")
    if experiment is None:
        return "http://127.0.0.1:5000 (no experiment 'kimp' yet)"
    return (
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    )


main.add_command(sentiment)
main.add_command(stream)
main.add_command(serve)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True)
def ui(host: str, port: int) -> None:
    """Start `dagster dev` on kimp's instance, so the UI shows the runs of `kimp` commands."""
    from kimp_pipelines.instance import instance_env

    env = instance_env(_settings())  # the child's environment: DAGSTER_HOME and the instance's storage
    click.echo(f"kimp: DAGSTER_HOME={env['DAGSTER_HOME']}; open http://{host}:{port}", err=True)
    exe = os.path.join(os.path.dirname(sys.executable), "dagster")
    args = [exe, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)]
    os.execve(exe, args, env)


if __name__ == "__main__":
    main()
