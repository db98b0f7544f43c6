"""The signal API: a thin FastAPI layer over kimp.serving.service.SignalService (framework choice measured:
docs/decisions.md).

Routes: ``GET /v1/signal/{coin}?kr_venue=upbit``, ``POST /v1/predict``, ``GET /healthz`` (503 when features
are stale or no model is loaded), ``GET /metrics`` (Prometheus). Bad input answers 4xx with
``{"error": ..., "field": ...}``; a 5xx means the service itself failed (counted, logged), never the client.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from kimp.serving.service import RequestError, SignalService, Unavailable

log = logging.getLogger("kimp.serving.api")
JSON = "application/json"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


class _Timing:
    """Pure ASGI middleware: the request-latency histogram by route template, method and status."""

    def __init__(self, app: Any, service: SignalService) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            m = self.service.metrics
            m.request.labels(path, scope["method"], str(status[0])).observe(time.perf_counter() - t0)
            if 400 <= status[0] < 500:
                m.errors.labels("request_4xx").inc()
            elif status[0] >= 500 and status[0] != 503:
                m.errors.labels("request_5xx").inc()


def create_app(service: SignalService) -> FastAPI:
    app = FastAPI(
        title="kimp signals",
        description="Kimchi-premium signals from the champion model on streaming features.",
        version="1",
    )

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, exc: RequestError) -> Response:
        return _json(exc.payload(), exc.status)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> Response:
        return _json({"error": str(exc)}, 503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _json({"error": first.get("msg", "invalid request"), "field": field}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        field = "path" if exc.status_code == 404 else "method" if exc.status_code == 405 else "request"
        return _json({"error": str(exc.detail), "field": field}, exc.status_code)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> Response:
        log.exception("request failed", extra={"path": request.url.path})
        return _json({"error": f"internal error: {type(exc).__name__}"}, 500)

    @app.get("/v1/signal/{coin}")
    async def signal(coin: str, kr_venue: str | None = None) -> Response:
        """The newest signal of ``coin`` on ``kr_venue`` (default: the streamed venue)."""
        return _json(service.signal(coin, kr_venue))

    @app.post("/v1/predict")
    async def predict(request: Request) -> Response:
        """Probabilities of the champion for a feature vector: ``{"coin", "kr_venue", "features": {...}}``."""
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise RequestError("body", f"not valid JSON: {exc}") from None
        return _json(service.predict(body))

    @app.get("/healthz")
    async def healthz() -> Response:
        ok, details = service.health()
        return _json(details, 200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Timing, service=service)  # type: ignore[arg-type]
    return app
