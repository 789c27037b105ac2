"""HTTP requests by route, method and status, their duration, and the SSE streams open now."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.telemetry.metrics import Metrics

__all__ = ["HttpMetricsMiddleware"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
"""The route label of a request no route took (a 404): its path could be anything."""
SCOPE_KEY = "service.measured"
"""Set by the first of these a request meets (the app's, in `create_app`, then each route's): measured once."""


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Each label set's children, looked up once: `labels()` validates and locks on every call.
        self._children: dict[tuple[str, str, int], tuple[Callable[[], None], Callable[[float], None]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = True
        start = time.perf_counter()
        status = 500  # unless a response starts: the server answers an app that failed with a 500
        streaming = False

        async def send_measured(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"content-type" and value.startswith(b"text/event-stream"):
                        streaming = True
                        self.metrics.sse_streams.inc()
                        break
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
        finally:
            if streaming:
                self.metrics.sse_streams.dec()
            # The router leaves the route it matched in the scope: its template, never the raw path. A mount
            # (static files) leaves its prefix as the root path instead.
            route = getattr(scope.get("route"), "path", None)
            if route is None:
                route = f"{scope['root_path']}/{{path}}" if scope.get("root_path") else UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "other"
            children = self._children.get((method, route, status))
            if children is None:
                children = self._children[(method, route, status)] = (
                    self.metrics.http_requests.labels(method, route, str(status)).inc,
                    self.metrics.http_duration.labels(method, route).observe,
                )
            count, observe = children
            count()
            observe(time.perf_counter() - start)
