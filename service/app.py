"""`create_app`: builds the whole service from its settings, and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import TokenVerifier
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Scope
from typing_extensions import override

from service import __version__, dashboard
from service.api import docs, health, metrics
from service.api.deps import Services
from service.api.jobs import jobs_router
from service.api.schemas import JobCreate
from service.auth import StaticTokenVerifier
from service.domain.jobs import SpecLimits, new_runner_id, spec_model
from service.errors import exception_handlers
from service.jobs.engine import JobEngine, JobLimits
from service.lifecycle import Lifecycle
from service.mcp.manager import SessionManager
from service.mcp.metrics import McpMetricsMiddleware
from service.mcp.server import build_server
from service.mcp.tools import McpTool
from service.middleware import (
    BodyLimitMiddleware,
    HeaderLimitMiddleware,
    HostCheckMiddleware,
    HttpMetricsMiddleware,
    JsonErrorsMiddleware,
    RequestIdMiddleware,
    TrimmedHeadersMiddleware,
)
from service.settings import Settings
from service.stores import create_stores
from service.stores.measured import MeasuredStorage
from service.telemetry.metrics import Metrics
from service.telemetry.tracing import install_globally, tracer_provider

__all__ = ["MCP_PATH", "ServiceApp", "create_app"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MCP_HEADERS = ["Mcp-Session-Id", "MCP-Protocol-Version"]

DESCRIPTION = """
MCP over StreamableHTTP at **`/mcp`** (POST, GET, DELETE), with one tool,
`start-notification-stream`, and the REST routes below to start, inspect, cancel and follow
the same notification jobs. Every job, whichever side started it, is visible on both.
"""


class LabelledRoute(Route):
    """A Starlette route that leaves itself in the scope when it matches, as FastAPI's own routes do: the
    HTTP metrics label a request by its route's template, and FastAPI's router does not set it for this one."""

    @override
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


class ServiceApp(FastAPI):
    """The FastAPI app, and the `lifecycle` of what it runs (for the server that serves it)."""

    lifecycle: Lifecycle


def create_app(
    settings: Settings | None = None,
    *,
    token_verifier: TokenVerifier | None = None,
    extra_tools: Sequence[McpTool] = (),
) -> ServiceApp:
    """Build storage, job engine, MCP server and routes; nothing starts until the lifespan runs.

    `token_verifier` replaces the static tokens of `SERVICE_AUTH_TOKENS` (a JWT or OAuth
    introspection verifier, say). `extra_tools` are served next to `start-notification-stream`
    (the conformance tests add the reference server's fixture tools this way).
    """
    settings = settings if settings is not None else Settings()
    if token_verifier is None and settings.auth_tokens:
        tokens = {name: token.get_secret_value() for name, token in settings.auth_tokens.items()}
        token_verifier = StaticTokenVerifier(tokens)
    runner_id = new_runner_id() if not settings.replica_id else f"{settings.replica_id}-{new_runner_id()}"
    replica = settings.replica_id or runner_id  # what the other replicas call this one
    stores = create_stores(settings, runner_id=runner_id, replica=replica)
    telemetry = Metrics(backend=settings.store.value)
    traces = tracer_provider(replica=replica, version=__version__)
    tracer = traces.get_tracer("mcp-notification-service", __version__) if traces is not None else None
    measured = settings.metrics or tracer is not None
    storage = MeasuredStorage(stores.storage, telemetry, tracer=tracer) if measured else stores.storage
    engine = JobEngine(
        storage,
        JobLimits(max_jobs=settings.max_jobs, max_jobs_per_session=settings.max_jobs_per_session),
        board=stores.board,
        runner_id=runner_id,
        metrics=telemetry,
        tracer=tracer,
    )
    # One model of a job's arguments with the configured limits, for the tool and the REST body alike.
    limits = SpecLimits(
        max_count=settings.max_count,
        min_interval=settings.min_interval,
        max_interval=settings.max_interval,
        max_caller_length=settings.max_caller_length,
    )
    manager = SessionManager(
        build_server(
            engine,
            spec=spec_model(limits),
            version=__version__,
            extra_tools=extra_tools,
            middleware=[McpMetricsMiddleware(telemetry)] if settings.metrics else [],
            traced=tracer is not None,
        ),
        event_log=storage,
        on_replay=lambda events: telemetry.replayed("mcp", events),
        relay=stores.relay,
        replica=settings.replica_id,
        fast_path=settings.mcp_fast_path,
        json_response=settings.json_response,
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=settings.mcp_allowed_hosts(),
            allowed_origins=settings.mcp_allowed_origins(),
        ),
        retry_interval=settings.sse_retry_ms,
        ping_interval=settings.sse_ping_interval,
        session_idle_timeout=settings.session_idle_timeout,
        max_sessions=settings.max_sessions,
        max_request_body_size=settings.max_request_body,
    )

    telemetry.watch(sessions=lambda: len(manager), running_jobs=lambda: engine.running_count)
    lifecycle = Lifecycle(storage, engine, manager, stores.relay)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if token_verifier is None and not settings.is_loopback():
            logger.warning(
                "SERVICE_HOST=%s is reachable from other machines and no authentication is configured: "
                "anyone who can reach this port can run jobs. Set SERVICE_AUTH_TOKENS.",
                settings.host,
            )
        if traces is not None:
            install_globally(traces)
        try:
            async with lifecycle.running():
                yield
        finally:
            if traces is not None:
                traces.shutdown()  # sends the spans still batched

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
    app.lifecycle = lifecycle
    app.state.services = Services(
        settings=settings,
        engine=engine,
        sessions=manager,
        auth_required=token_verifier is not None,
        replica=replica,
        metrics=telemetry,
    )
    for exc_type, handler in exception_handlers(MCP_PATH).items():
        app.add_exception_handler(exc_type, handler)
    app.include_router(jobs_router(spec_model(limits, base=JobCreate, name="JobCreate")))
    app.include_router(health.router)
    if settings.metrics:
        app.include_router(metrics.router)
    docs.install(app)
    dashboard.install(app)

    mcp_endpoint: ASGIApp = TrimmedHeadersMiddleware(StreamableHTTPASGIApp(manager))
    if token_verifier is not None:
        # The SDK's own middleware: 401 with WWW-Authenticate without a valid token, and the
        # session manager binds each session to the principal that opened it.
        mcp_endpoint = RequireAuthMiddleware(AuthContextMiddleware(mcp_endpoint), required_scopes=[])
    # A route, not a mount: a mount would answer /mcp with a 307 redirect to /mcp/. The first route, as the
    # busiest: the router tries its routes in order, and each included router its own.
    app.router.routes.insert(0, LabelledRoute(MCP_PATH, mcp_endpoint, methods=["GET", "POST", "DELETE"]))

    # Middleware, innermost first.
    if token_verifier is not None:
        app.add_middleware(AuthenticationMiddleware, backend=BearerAuthBackend(token_verifier))
    app.add_middleware(BodyLimitMiddleware, max_body_size=settings.max_request_body, exempt=[MCP_PATH])
    app.add_middleware(HostCheckMiddleware, allowed_hosts=settings.mcp_allowed_hosts(), exempt=[MCP_PATH, "/healthz"])
    app.add_middleware(HeaderLimitMiddleware, max_bytes=settings.max_header_bytes)
    app.add_middleware(JsonErrorsMiddleware, mcp_path=MCP_PATH)
    if settings.metrics:
        app.add_middleware(HttpMetricsMiddleware, metrics=telemetry)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", "Last-Event-ID", *MCP_HEADERS],
            expose_headers=[*MCP_HEADERS, "X-Request-ID"],
        )
    app.add_middleware(RequestIdMiddleware)  # outermost: every line logged for a request carries its id
    return app
