"""The signal API: a thin ASGI layer over kimp.serving.service.SignalService (choices measured:
docs/decisions.md). The two hot routes are answered in plain ASGI (``FastRoutes``), the rest by FastAPI.

Routes: ``GET /v1/signal/{coin}?kr_venue=upbit``, ``POST /v1/predict``, ``GET /healthz`` (503 when features
are stale or no model is loaded), ``GET /metrics`` (Prometheus). Bad input answers 4xx with
``{"error": ..., "field": ...}``; a 5xx means the service itself failed (counted, logged), never the client.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl

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


SIGNAL_ROUTE, PREDICT_ROUTE = "/v1/signal/{coin}", "/v1/predict"
SIGNAL_PREFIX = "/v1/signal/"
MAX_BODY = 1_000_000  # bytes of a POST body read at most
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Latency:
    """The request-latency histogram's children by (route, method, status), bound once each."""

    def __init__(self, service: SignalService) -> None:
        self.metrics = service.metrics
        self.children: dict[tuple[str, str, int], Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self.metrics.request.labels(route, method, str(status))
        child.observe(seconds)
        if 400 <= status < 500:
            self.metrics.errors.labels("request_4xx").inc()
        elif status >= 500 and status != 503:
            self.metrics.errors.labels("request_5xx").inc()


class FastRoutes:
    """The outermost ASGI app: ``GET /v1/signal/{coin}`` and ``POST /v1/predict`` answered here, in plain
    ASGI over the framework-free service (FastAPI's routing, dependency resolution and response classes
    cost more than the route itself: docs/decisions.md); every other request goes to the FastAPI app,
    timed the same way. Both hot routes keep FastAPI's behaviour: the same JSON, 4xx bodies naming the
    field, 503 when unavailable, 500 only for the service's own failures (logged)."""

    def __init__(self, app: Any, service: SignalService) -> None:
        self.app, self.service = app, service
        self.latency = _Latency(service)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path, method = scope["path"], scope["method"]
        if method == "GET" and path.startswith(SIGNAL_PREFIX) and "/" not in path[11:] and len(path) > 11:
            route = SIGNAL_ROUTE
            status, body = self._answer(self.service.signal_json, path[11:], _venue(scope["query_string"]))
        elif method == "POST" and path == PREDICT_ROUTE:
            route = PREDICT_ROUTE
            raw = await _body(receive)
            if raw is None:
                status, body = 413, orjson.dumps(
                    {"error": f"the body is over {MAX_BODY // 1_000_000} MB (a full feature vector is ~30 KB)",
                     "field": "body"}
                )  # fmt: skip
            else:
                status, body = self._answer(self.service.predict_json, raw)
        else:
            await self._framework(scope, receive, send, t0)
            return
        await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
        await send({"type": "http.response.body", "body": body})
        self.latency.observe(route, method, status, time.perf_counter() - t0)

    def _answer(self, route: Any, *args: Any) -> tuple[int, bytes]:
        try:
            return 200, route(*args)
        except RequestError as exc:
            return exc.status, orjson.dumps(exc.payload())
        except Unavailable as exc:
            return 503, orjson.dumps({"error": str(exc)})
        except Exception as exc:
            log.exception("request failed", extra={"route": route.__name__})
            return 500, orjson.dumps({"error": f"internal error: {type(exc).__name__}"})

    async def _framework(self, scope: dict, receive: Any, send: Any, t0: float) -> None:
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
            self.latency.observe(path, scope["method"], status[0], time.perf_counter() - t0)


def _venue(query: bytes) -> str | None:
    """``kr_venue`` from the query string (the last one given, as FastAPI reads a scalar parameter)."""
    if not query:
        return None
    venue = None
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == "kr_venue":
            venue = value
    return venue


async def _body(receive: Any) -> bytes | None:
    """The request body, or None past MAX_BODY (the rest is not read: the client gets a 413)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def create_app(service: SignalService) -> FastRoutes:
    """What ``kimp serve`` runs: the hot routes in plain ASGI in front of the FastAPI app."""
    return FastRoutes(framework_app(service), service)


def framework_app(service: SignalService) -> FastAPI:
    """The FastAPI app: /healthz, /metrics, the OpenAPI docs, and FastAPI's 404 / 405 answers."""
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

    # Requests to these two are answered by FastRoutes in front of this app (the same service calls); they
    # are declared for the OpenAPI schema (/docs) and so that a wrong method gets FastAPI's 405.
    @app.get(SIGNAL_ROUTE)
    async def signal(coin: str, kr_venue: str | None = None) -> Response:
        """The newest signal of ``coin`` on ``kr_venue`` (default: the streamed venue)."""
        return Response(service.signal_json(coin, kr_venue), media_type=JSON)

    @app.post(PREDICT_ROUTE)
    async def predict(request: Request) -> Response:
        """Probabilities of the champion for a feature vector: ``{"coin", "kr_venue", "features": {...}}``."""
        return Response(service.predict_json(await request.body()), media_type=JSON)

    @app.get("/healthz")
    async def healthz() -> Response:
        ok, details = service.health()
        return _json(details, 200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
