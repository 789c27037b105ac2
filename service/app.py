"""`create_app`: the standalone service, a FastAPI app with one `NotificationService` installed at its root."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from mcp.server.auth.provider import TokenVerifier

from service.api import docs
from service.auth import Authenticate
from service.dashboard import front_page
from service.errors import exception_handlers, internal_error
from service.middleware import HttpMetricsMiddleware, RequestIdMiddleware
from service.notification_service import NotificationService
from service.settings import Settings
from service.tools.base import McpTool
from service.version import __version__

__all__ = ["ServiceApp", "create_app"]

MCP_HEADERS = ["Mcp-Session-Id", "MCP-Protocol-Version"]

DESCRIPTION = """
MCP over StreamableHTTP at **`/mcp`** (POST, GET, DELETE), with one tool,
`start-notification-stream`, and the REST routes below to start, inspect, cancel and follow
the same notification jobs. Every job, whichever side started it, is visible on both.
"""


class ServiceApp(FastAPI):
    """The FastAPI app, and the `service` it serves (for tests and tools that look inside)."""

    service: NotificationService


def create_app(
    settings: Settings | None = None,
    *,
    authenticate: Authenticate | None = None,
    token_verifier: TokenVerifier | None = None,
    extra_tools: Sequence[McpTool] = (),
) -> ServiceApp:
    """The service alone; nothing starts until the lifespan runs (`NotificationService` explains each option)."""
    service = NotificationService(
        settings, authenticate=authenticate, token_verifier=token_verifier, extra_tools=extra_tools
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service.running():
            yield

    traces = service.tracer_provider
    app = ServiceApp(
        title="MCP notification service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by `docs` from the package itself: FastAPI's own pages load their scripts from a CDN.
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry: HTTP request spans when tracing is configured; metrics are ours.
        telemetry=(
            {"tracer_provider": traces, "metrics": False, "logs": False, "operation_spans": False}
            if traces is not None
            else {"tracing": False, "metrics": False, "logs": False}
        ),
    )
    app.service = service
    # For what no route of the service answers (a 404, a 405): the service's routes carry their own.
    for exc_type, handler in exception_handlers().items():
        app.add_exception_handler(exc_type, handler)
    app.add_exception_handler(Exception, internal_error(rpc=False, outermost=True))
    service.install(app)
    docs.install(app)
    app.add_api_route("/", front_page, include_in_schema=False)
    # Every request of the app, not only the service's routes', is measured and gets an id: a 404 too.
    if service.settings.metrics:
        app.add_middleware(HttpMetricsMiddleware, metrics=service.metrics)
    if service.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=service.settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", "Last-Event-ID", *MCP_HEADERS],
            expose_headers=[*MCP_HEADERS, "X-Request-ID"],
        )
    app.add_middleware(RequestIdMiddleware)
    return app
