"""What ``kimp stream`` and ``kimp serve`` run (the CLI only parses options into these calls)."""

from __future__ import annotations

import gc
import logging
import signal as signals
import threading
from collections.abc import Callable
from typing import Any

from kimp.serving.champion import ChampionHolder
from kimp.serving.live import LiveLoop, StreamOptions, build_loop
from kimp.serving.metrics import Metrics
from kimp.serving.service import SignalService
from kimp.streaming.online import OnlineStore, Signal, open_online_store

log = logging.getLogger("kimp.serving")


def open_store(settings: Any) -> OnlineStore:
    return open_online_store(settings.streaming.redis_url, settings.home, prefix=settings.streaming.prefix)


def champion(settings: Any, metrics: Metrics) -> ChampionHolder:
    return ChampionHolder(
        str(settings.mlflow_uri),
        settings.streaming.model,
        poll_s=settings.streaming.model_poll_s,
        on_load=metrics.model_loaded,
    )


def run_stream(
    settings: Any,
    options: StreamOptions,
    *,
    stop: threading.Event | None = None,
    on_signal: Callable[[Signal, float], None] | None = None,
    holder: ChampionHolder | None = None,
    store: OnlineStore | None = None,
    metrics: Metrics | None = None,
    service: SignalService | None = None,
) -> LiveLoop:
    """Warm up and run the live loop until the feed ends, ``stop`` is set or ``options.max_bars``."""
    metrics = metrics or Metrics()
    store = store or open_store(settings)
    own_holder = holder is None
    holder = holder or champion(settings, metrics).start()
    loop, warm_up = build_loop(
        settings, options, store=store, holder=holder, metrics=metrics, on_signal=on_signal
    )
    if service is not None:
        service.loop_status = {"running": False, "warming_up": True}
    import time

    t0 = time.perf_counter()
    events = warm_up()
    loop.stats.warm_up_s = round(time.perf_counter() - t0, 2)
    log.info(
        "stream started",
        extra={
            "source": options.source,
            "kr_venue": loop.engine.kr_venue,
            "interval_s": loop.engine.interval_s,
            "warm_up_s": loop.stats.warm_up_s,
            "pg": loop.timeseries is not None,
            "record": options.record,
        },
    )
    if service is not None:
        service.loop_status = loop.stats.as_dict()

        def report(signal: Signal, ms: float, inner=on_signal) -> None:
            service.loop_status = loop.stats.as_dict()
            if inner is not None:
                inner(signal, ms)

        loop.on_signal = report
    try:
        loop.run(events, stop=stop, max_bars=options.max_bars)
    finally:
        if own_holder:
            holder.stop()
        if service is not None:
            service.loop_status = loop.stats.as_dict()
    return loop


def build_service(settings: Any, metrics: Metrics | None = None) -> SignalService:
    from kimp.features.types import FeatureConfig

    metrics = metrics or Metrics()
    return SignalService(
        open_store(settings),
        champion(settings, metrics).start(),
        stream=settings.streaming,
        features=settings.features or FeatureConfig(),
        horizon=settings.walk_forward.horizon_minutes,
        metrics=metrics,
    )


def serve(settings: Any, *, host: str, port: int, stream: StreamOptions | None = None) -> None:
    """The API under uvicorn; with ``stream`` the live loop runs in a thread of the same process (one
    model in memory, one store connection per thread)."""
    import uvicorn

    from kimp.serving.api import create_app

    service = build_service(settings)
    stop = threading.Event()
    thread = None
    if stream is not None:

        def target() -> None:
            try:
                run_stream(
                    settings,
                    stream,
                    stop=stop,
                    holder=service.holder,
                    metrics=service.metrics,
                    service=service,
                    store=open_store(settings),
                )
            except Exception:
                log.exception("live loop stopped")
                service.metrics.errors.labels("stream").inc()

        thread = threading.Thread(target=target, name="live-loop", daemon=True)
        thread.start()
    # uvloop + httptools (uvicorn[standard]): the C event loop and HTTP parser; no access log, no Server
    # header (per-request work a signal request should not pay for; docs/decisions.md)
    config = uvicorn.Config(
        create_app(service),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        server_header=False,
    )
    server = uvicorn.Server(config)
    # the imports' and the model's objects (millions: MLflow, polars, the booster) are never garbage:
    # frozen out of the collector, a full collection no longer walks them in the middle of a request
    gc.collect()
    gc.freeze()
    try:
        server.run()
    finally:
        stop.set()
        if service.holder is not None:
            service.holder.stop()
        if thread is not None:
            thread.join(timeout=10)


def install_stop(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set ``stop`` (the loop ends after the current event, the recorder flushes)."""
    for sig in (signals.SIGTERM, signals.SIGINT):
        signals.signal(sig, lambda *_: stop.set())
