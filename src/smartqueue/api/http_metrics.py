"""HTTP request counts and latency per route *template* (`/status/{job_id}`), never a job id."""

from __future__ import annotations

import time

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartqueue.metrics import Metrics

UNMATCHED = "unmatched"  # any path no route knows: one label, whatever the client sent


class HttpMetrics:
    """Pure ASGI middleware (no body buffering, streams pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; count it once it ends, under the route that matched it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    @staticmethod
    def _observe(scope: Scope, status: int, elapsed_s: float) -> None:
        services = getattr(scope["app"].state, "services", None)
        if services is None:  # before the lifespan built the services
            return
        metrics: Metrics = services.metrics
        method, route = scope["method"], route_template(scope)
        metrics.http_requests.labels(method, route, str(status)).inc()
        metrics.http_duration.labels(method, route).observe(elapsed_s)


def route_template(scope: Scope) -> str:
    """The path template of the route that handled the request (`unmatched` when none did)."""
    route = scope.get("route")
    path = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    return path if isinstance(path, str) else UNMATCHED
