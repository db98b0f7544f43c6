"""``kimp stream`` and ``kimp serve``: options parsed into kimp.serving calls (docs/serving.md)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import click

from kimp.settings import Settings
from kimp_pipelines.cli_options import day_option as _day
from kimp_pipelines.cli_options import settings_from_env as _settings


def stream_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The live loop's options, shared by ``kimp stream`` and ``kimp serve --stream``."""
    options = [
        click.option(
            "--source",
            type=click.Choice(["simulated", "files", "exchange"]),
            default="simulated",
            show_default=True,
            help="simulated: the seeded market as a live feed; files: replay stored history; exchange: ccxt.",
        ),
        click.option(
            "--start", callback=_day, help="First day to replay (stored sources; default: live now)."
        ),
        click.option("--end", callback=_day, help="Last day to replay, inclusive (default: open-ended)."),
        click.option(
            "--speed",
            type=float,
            help="Times real time (default: live 1x without --start, as fast as it can with --start).",
        ),
        click.option("--kr-venue", type=click.Choice(["upbit", "bithumb"]), help="[KIMP_STREAM_KR_VENUE]"),
        click.option("--record", is_flag=True, help="Keep every served feature vector (served_features)."),
        click.option(
            "--warmup-days",
            type=click.IntRange(0, 400),
            help="Whole days of stored history before the start to warm up from (default: every day the "
            "feature catalog reads; 0: a cold start, features warm up live).",
        ),
        click.option("--max-bars", type=click.IntRange(1), help="Stop after this many bars."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), func)


def _options(source: str, start, end, speed, kr_venue, record, warmup_days, max_bars):  # type: ignore[no-untyped-def]
    from kimp.serving.live import StreamOptions

    try:
        return StreamOptions(
            source=source,
            start=start,
            end=end,
            speed=speed,
            kr_venue=kr_venue,
            record=record,
            warmup_days=warmup_days,
            max_bars=max_bars,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.command()
@stream_options
def stream(**kwargs: Any) -> None:
    """Run the live loop: feed -> streaming features -> online store -> champion -> signal -> online store
    (and PostgreSQL with KIMP_PG_URL). Prints one line per signal."""
    from kimp.serving import logs
    from kimp.serving.run import install_stop, run_stream

    logs.configure()
    settings = _settings()
    options = _options(**kwargs)
    stop = threading.Event()
    install_stop(stop)

    def show(signal: Any, ms: float) -> None:
        click.echo(
            f"{signal.ts:%Y-%m-%d %H:%M} {signal.coin} {signal.kr_venue}: p_down {signal.p_down:.3f} "
            f"p_flat {signal.p_flat:.3f} p_up {signal.p_up:.3f} -> target {signal.target_position:+.2f} "
            f"({signal.model} v{signal.model_version}, bar to signal {ms:.1f} ms)"
        )

    try:
        loop = run_stream(settings, options, stop=stop, on_signal=show)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    s = loop.stats.as_dict()
    click.echo(f"kimp stream: {s['bars']} bars, {s['signals']} signals, {s['errors']} errors", err=True)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--stream", "with_stream", is_flag=True, help="Run the live loop in the same process.")
@stream_options
def serve(host: str, port: int, with_stream: bool, **kwargs: Any) -> None:
    """The signal API (GET /v1/signal/{coin}, POST /v1/predict, /healthz, /metrics) under uvicorn."""
    from kimp.serving import logs
    from kimp.serving.run import serve as run_serve

    logs.configure()
    settings = _settings()
    options = _options(**kwargs) if with_stream else None
    click.echo(f"kimp serve: http://{host}:{port} (stream: {'on' if with_stream else 'off'})", err=True)
    run_serve(settings, host=host, port=port, stream=options)


def live_demo(settings: Settings, *, bars: int = 4, speed: float = 30.0) -> None:
    """The demo's last step: a few bars of the simulated market streamed live (``speed`` x real time from
    the current minute) through the features, the champion just registered and the signal rule; prints each
    signal and its bar-to-signal latency."""
    from kimp.serving.live import StreamOptions
    from kimp.serving.run import run_stream

    click.echo(
        f"\nLive signals: the simulated market from now at {speed:.0f}x real time, {bars} one-minute bars, "
        f"champion of kimp-{settings.streaming.model} (`kimp serve --stream` serves the same):"
    )

    def show(signal: Any, ms: float) -> None:
        click.echo(
            f"  {signal.ts:%H:%M} {signal.coin} {signal.kr_venue}: p_down {signal.p_down:.3f} p_flat "
            f"{signal.p_flat:.3f} p_up {signal.p_up:.3f} -> target {signal.target_position:+.2f}  "
            f"(v{signal.model_version}; bar close to signal {ms:.1f} ms)"
        )

    # One day of the simulated market before now warms the engine (about 2 s): the features and the
    # persistence baseline's last move are then known from the first bar, as they are for a running stream.
    options = StreamOptions(source="simulated", speed=speed, warmup_days=1, max_bars=bars)
    try:
        loop = run_stream(settings, options, on_signal=show)
    except Exception as exc:  # the demo's batch results stand; say why the live part did not run
        click.echo(f"  live signals failed: {type(exc).__name__}: {exc}", err=True)
        return
    lat = sorted(loop.stats.latencies_ms)
    if lat:
        click.echo(
            f"  {loop.stats.bars} bars, {loop.stats.signals} signals; bar close to signal p50 "
            f"{lat[len(lat) // 2]:.1f} ms, max {lat[-1]:.1f} ms (the first bar includes loading; warmed up on "
            "the day before: features with a longer look-back fill in as bars arrive). Serve them: "
            ".venv/bin/kimp serve --stream"
        )
