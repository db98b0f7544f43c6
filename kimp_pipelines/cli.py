"""The ``kimp`` command line: demo, materialize, sql, ui."""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import date

import click

from kimp.settings import PROJECT_ROOT, Settings
from kimp.timeutil import days_between

DEMO_RANGE = (date(2024, 3, 1), date(2024, 3, 3))  # simulated: any dates work; fixed so results repeat


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _day(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show Dagster's own logs.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """kimp: research and execution platform for the Korean kimchi premium."""
    ctx.obj = {"log_level": "INFO" if verbose else "WARNING"}
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore")


@main.command()
@click.option("--start", callback=_day, help="First day (YYYY-MM-DD, UTC).")
@click.option("--end", callback=_day, help="Last day, inclusive.")
@click.option(
    "--select", default=None, help="Dagster asset selection, e.g. 'kimchi_premium' or '+kimchi_premium'."
)
def materialize(start: date | None, end: date | None, select: str | None) -> None:
    """Materialize a range of daily partitions through Dagster, one run per day."""
    if start is None or end is None:
        raise click.UsageError("--start and --end are required")
    _materialize(_settings(), start, end, select)


def _materialize(settings: Settings, start: date, end: date, select: str | None) -> None:
    log_level = (click.get_current_context().find_root().obj or {}).get("log_level", "WARNING")
    from kimp_pipelines.runner import materialize_range

    try:
        days = days_between(start, end)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(
        f"kimp: materializing {len(days)} day(s) {start}..{end} from the {settings.source} source "
        f"into {settings.storage_uri} (Dagster home {settings.dagster_home})",
        err=True,
    )
    t0 = time.perf_counter()
    try:
        outcome = materialize_range(settings, days, select, log_level=log_level)
    except ValueError as exc:  # e.g. a selection that matches nothing
        raise click.ClickException(str(exc)) from None
    click.echo(f"kimp: {outcome.summary()} in {time.perf_counter() - t0:.1f}s", err=True)
    if not outcome.ok:
        for line in outcome.problems:
            click.echo(f"  - {line}", err=True)
        sys.exit(1)


@main.command()
@click.argument("query")
def sql(query: str) -> None:
    """Run a DuckDB QUERY over every materialized table (one view per asset) and print CSV."""
    from kimp.storage import ParquetStore
    from kimp.storage.sql import query_csv

    settings = _settings()
    try:
        click.echo(query_csv(ParquetStore(settings.storage_uri), query), nl=False)
    except Exception as exc:  # duckdb errors already say what is wrong with the query
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@main.command()
@click.option("--start", callback=_day, help=f"First day (default {DEMO_RANGE[0]} on the simulated market).")
@click.option("--end", callback=_day, help=f"Last day (default {DEMO_RANGE[1]} on the simulated market).")
def demo(start: date | None, end: date | None) -> None:
    """The main job: materialize a short range of the whole market-data graph and show where to look."""
    settings = _settings()
    if start is None or end is None:
        if settings.source != "simulated":
            raise click.UsageError(
                f"with KIMP_SOURCE={settings.source}, give --start and --end: days the data covers "
                "(e.g. --start 2018-01-08 --end 2018-01-10 for ../shared/data/real)"
            )
        start, end = DEMO_RANGE
    _materialize(settings, start, end, None)
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
        f'  query them:  .venv/bin/kimp sql "SELECT * FROM kimchi_premium LIMIT 5"\n'
        f"  Dagster UI:  .venv/bin/kimp ui   (then http://127.0.0.1:3000 -> Runs, Assets)\n"
        f"  Dagster instance (runs, events): {settings.dagster_home}"
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True)
def ui(host: str, port: int) -> None:
    """Start `dagster dev` on kimp's instance, so the UI shows the runs of `kimp` commands."""
    from kimp_pipelines.instance import prepare_dagster_home

    home = prepare_dagster_home(_settings())
    click.echo(f"kimp: DAGSTER_HOME={home}; open http://{host}:{port}", err=True)
    exe = os.path.join(os.path.dirname(sys.executable), "dagster")
    os.execv(exe, [exe, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)])


if __name__ == "__main__":
    main()
