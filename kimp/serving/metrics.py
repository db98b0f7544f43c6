"""Prometheus metrics of the live loop and the signal API (one registry per service object, so that tests
and several apps in one process never share counters).

- ``kimp_request_seconds`` (histogram; route, method, status): request latency inside the app;
- ``kimp_bar_to_signal_seconds`` (histogram): from a bar's close reaching the loop to its signal readable in
  the online store (features of every coin, prediction, store writes);
- ``kimp_feature_age_seconds`` (gauge; coin, kr_venue): age of the newest stored feature vector, read at
  scrape time;
- ``kimp_errors_total`` (counter; where): bad requests (``request_4xx``), failures inside the service
  (``request_5xx``), the loop's failed bars (``stream``), bars not appended to PostgreSQL
  (``stream_bars``), failed registry polls (``model_poll``);
- ``kimp_model_info`` (gauge 1; model, version, via) and ``kimp_model_load_seconds``;
- ``kimp_stream_bars_total``, ``kimp_signals_total``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request = Histogram(
            "kimp_request_seconds",
            "Request latency",
            ("route", "method", "status"),
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.bar_to_signal = Histogram(
            "kimp_bar_to_signal_seconds", "Bar close to readable signal", registry=r, buckets=LATENCY_BUCKETS
        )
        self.errors = Counter("kimp_errors_total", "Errors", ("where",), registry=r)
        self.model_info = Gauge("kimp_model_info", "Served model", ("model", "version", "via"), registry=r)
        self.model_load = Gauge("kimp_model_load_seconds", "Time to load the served model", registry=r)
        self.bars = Counter("kimp_stream_bars_total", "Bars closed by the live loop", registry=r)
        self.signals = Counter("kimp_signals_total", "Signals written", registry=r)
        self._ages: Callable[[], Iterable[tuple[str, str, float]]] | None = None
        r.register(_AgeCollector(self))

    def feature_ages(self, read: Callable[[], Iterable[tuple[str, str, float]]]) -> None:
        """Where the feature-age gauge reads (coin, kr_venue, age in seconds) at scrape time."""
        self._ages = read

    def model_loaded(self, loaded) -> None:  # type: ignore[no-untyped-def]
        self.model_info.clear()
        self.model_info.labels(loaded.registered, loaded.version, loaded.via).set(1)
        self.model_load.set(loaded.load_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _AgeCollector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kimp_feature_age_seconds", "Age of the newest stored feature vector", labels=("coin", "kr_venue")
        )
        read = self.metrics._ages
        if read is not None:
            try:
                for coin, venue, age in read():
                    family.add_metric((coin, venue), age)
            except Exception:  # the store unreachable: the gauge is absent, /healthz says why
                self.metrics.errors.labels("metrics_age").inc()
        yield family
