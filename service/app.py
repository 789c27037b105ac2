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
from starlette.routing import Route
from starlette.types import ASGIApp

from service import __version__
from service.api import health
from service.api.deps import Services
from service.api.jobs import jobs_router
from service.api.schemas import JobCreate
from service.auth import StaticTokenVerifier
from service.errors import exception_handlers
from service.jobs.engine import JobEngine, JobLimits
from service.jobs.models import SpecLimits, new_runner_id, spec_model
from service.lifecycle import Lifecycle
from service.mcp.manager import SessionManager
from service.mcp.server import build_server
from service.mcp.tools import McpTool
from service.middleware import (
    BodyLimitMiddleware,
    HeaderLimitMiddleware,
    HostCheckMiddleware,
    JsonErrorsMiddleware,
    TrimmedHeadersMiddleware,
)
from service.settings import Settings
from service.stores import create_stores

__all__ = ["MCP_PATH", "ServiceApp", "create_app"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MCP_HEADERS = ["Mcp-Session-Id", "MCP-Protocol-Version"]

DESCRIPTION = """
MCP over StreamableHTTP at **`/mcp`** (POST, GET, DELETE), with one tool,
`start-notification-stream`, and the REST routes below to start, inspect, cancel and follow
the same notification jobs. Every job, whichever side started it, is visible on both.
"""


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
    storage = stores.storage
    engine = JobEngine(
        storage,
        JobLimits(max_jobs=settings.max_jobs, max_jobs_per_session=settings.max_jobs_per_session),
        board=stores.board,
        runner_id=runner_id,
    )
    # One model of a job's arguments with the configured limits, for the tool and the REST body alike.
    limits = SpecLimits(
        max_count=settings.max_count,
        min_interval=settings.min_interval,
        max_interval=settings.max_interval,
        max_caller_length=settings.max_caller_length,
    )
    manager = SessionManager(
        build_server(engine, spec=spec_model(limits), version=__version__, extra_tools=extra_tools),
        event_log=storage,
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

    lifecycle = Lifecycle(storage, engine, manager, stores.relay)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if token_verifier is None and not settings.is_loopback():
            logger.warning(
                "SERVICE_HOST=%s is reachable from other machines and no authentication is configured: "
                "anyone who can reach this port can run jobs. Set SERVICE_AUTH_TOKENS.",
                settings.host,
            )
        async with lifecycle.running():
            yield

    app = ServiceApp(
        title="MCP notification service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.lifecycle = lifecycle
    app.state.services = Services(
        settings=settings,
        engine=engine,
        sessions=manager,
        auth_required=token_verifier is not None,
        replica=replica,
    )
    for exc_type, handler in exception_handlers(MCP_PATH).items():
        app.add_exception_handler(exc_type, handler)
    app.include_router(jobs_router(spec_model(limits, base=JobCreate, name="JobCreate")))
    app.include_router(health.router)

    mcp_endpoint: ASGIApp = TrimmedHeadersMiddleware(StreamableHTTPASGIApp(manager))
    if token_verifier is not None:
        # The SDK's own middleware: 401 with WWW-Authenticate without a valid token, and the
        # session manager binds each session to the principal that opened it.
        mcp_endpoint = RequireAuthMiddleware(AuthContextMiddleware(mcp_endpoint), required_scopes=[])
    # A route, not a mount: a mount would answer /mcp with a 307 redirect to /mcp/.
    app.router.routes.append(Route(MCP_PATH, mcp_endpoint, methods=["GET", "POST", "DELETE"]))

    # Middleware, innermost first.
    if token_verifier is not None:
        app.add_middleware(AuthenticationMiddleware, backend=BearerAuthBackend(token_verifier))
    app.add_middleware(BodyLimitMiddleware, max_body_size=settings.max_request_body, exempt=[MCP_PATH])
    app.add_middleware(HostCheckMiddleware, allowed_hosts=settings.mcp_allowed_hosts(), exempt=[MCP_PATH, "/healthz"])
    app.add_middleware(HeaderLimitMiddleware, max_bytes=settings.max_header_bytes)
    app.add_middleware(JsonErrorsMiddleware, mcp_path=MCP_PATH)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", "Last-Event-ID", *MCP_HEADERS],
            expose_headers=MCP_HEADERS,
        )
    return app
