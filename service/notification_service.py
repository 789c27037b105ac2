"""`NotificationService`: the whole service as a part of a host's FastAPI app.

Built from its settings (nothing starts), run inside the host's lifespan (`running`), and
installed into the host's app under a prefix (`install`): its routes join the host's
router, so the host's OpenAPI lists them, each wrapped in the guards it needs
(`service.routing`), while the host's middleware and exception handlers stay the host's.
`create_app` is the standalone case: a FastAPI app with one of these installed at the root.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from fastapi import FastAPI
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.auth.provider import TokenVerifier
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecuritySettings
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware

from service.api import health as health_routes
from service.api import jobs as job_routes
from service.api import metrics as metrics_routes
from service.api.deps import ProvideServices, Services
from service.api.job_creation import creation_router
from service.api.schemas import JobCreate
from service.auth import Authenticate, user_of
from service.dashboard import assets as dashboard_assets
from service.dashboard import router as dashboard_routes
from service.domain.jobs import SpecLimits, new_runner_id, spec_model
from service.errors import exception_handlers, internal_error
from service.jobs.engine import JobEngine, JobLimits
from service.lifecycle import Lifecycle
from service.mcp.manager import SessionManager
from service.middleware import (
    AuthenticationMiddleware,
    HeaderLimitMiddleware,
    HostCheckMiddleware,
    HttpMetricsMiddleware,
    JsonErrorsMiddleware,
    RequestIdMiddleware,
    TrimmedHeadersMiddleware,
)
from service.routing import LabelledRoute, include_guarded
from service.settings import Settings
from service.stores import create_stores
from service.stores.base import EventLog, SessionRelay
from service.stores.measured import MeasuredStorage
from service.telemetry.metrics import Metrics
from service.telemetry.tracing import install_globally, tracer_provider
from service.tools.base import McpTool
from service.tools.metrics import McpMetricsMiddleware
from service.tools.resumed_call import resumed_call
from service.tools.server import build_server
from service.tools.sessions import LiveSessions
from service.version import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["MCP_PATH", "NotificationService"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class NotificationService:
    """MCP at `<prefix>/mcp`, the job routes, the dashboard and the health route, for a FastAPI app.

    `authenticate` is the host's: given the request, the principal's name, or None (a 401
    with `WWW-Authenticate`). It decides on `/mcp` (each session is bound to its principal)
    and on the job routes (jobs belong to it). Without it, a `token_verifier` checks bearer
    tokens, else `SERVICE_AUTH_TOKENS` does; with none of them, authentication is off.
    `extra_tools` are served next to `start-notification-stream`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        authenticate: Authenticate | None = None,
        token_verifier: TokenVerifier | None = None,
        extra_tools: Sequence[McpTool] = (),
    ) -> None:
        self.settings = settings = settings if settings is not None else Settings()
        tokens = {name: token.get_secret_value() for name, token in settings.auth_tokens.items()}
        self._user_of = user_of(authenticate=authenticate, token_verifier=token_verifier, tokens=tokens)
        runner_id = f"{settings.replica_id}-{new_runner_id()}" if settings.replica_id else new_runner_id()
        self.replica = settings.replica_id or runner_id
        """What the other replicas call this one."""
        stores = create_stores(settings, runner_id=runner_id, replica=self.replica)
        self.metrics = Metrics(backend=settings.store.value)
        self.tracer_provider: TracerProvider | None = tracer_provider(replica=self.replica, version=__version__)
        """Set when OTLP tracing is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`), for the host's own spans too."""
        tracer = (
            self.tracer_provider.get_tracer("mcp-notification-service", __version__) if self.tracer_provider else None
        )
        measured = settings.metrics or tracer is not None
        storage = MeasuredStorage(stores.storage, self.metrics, tracer=tracer) if measured else stores.storage
        self._engine = JobEngine(
            storage,
            JobLimits(max_jobs=settings.max_jobs, max_jobs_per_session=settings.max_jobs_per_session),
            board=stores.board,
            runner_id=runner_id,
            replica=self.replica,
            metrics=self.metrics,
            tracer=tracer,
            call_sink=lambda job: resumed_call(storage, job),
        )
        # One model of a job's arguments with the configured limits, for the tool and the REST body alike.
        self._limits = SpecLimits(
            max_count=settings.max_count,
            min_interval=settings.min_interval,
            max_interval=settings.max_interval,
            max_caller_length=settings.max_caller_length,
        )
        self.sessions = self._session_manager(storage, stores.relay, extra_tools, traced=tracer is not None)
        directory = LiveSessions(self.sessions, stores.relay, self._engine)
        self.metrics.watch(sessions=lambda: len(self.sessions), running_jobs=lambda: self._engine.running_count)
        self._lifecycle = Lifecycle(storage, self._engine, self.sessions, directory, shared=stores.board.leased)
        self._services = Services(
            settings=settings,
            engine=self._engine,
            sessions=directory,
            auth_required=self._user_of is not None,
            replica=self.replica,
            metrics=self.metrics,
        )

    def _session_manager(
        self, storage: EventLog, relay: SessionRelay, extra_tools: Sequence[McpTool], *, traced: bool
    ) -> SessionManager:
        settings = self.settings
        server = build_server(
            self._engine,
            spec=spec_model(self._limits),
            version=__version__,
            extra_tools=extra_tools,
            middleware=[McpMetricsMiddleware(self.metrics)] if settings.metrics else [],
            traced=traced,
            task_min_seconds=settings.task_min_seconds,
            task_ttl_ms=round(settings.job_retention * 1000),  # a task is kept as long as its job
        )
        return SessionManager(
            server,
            event_log=storage,
            relay=relay,
            # A killed holder's heartbeat lapses within a lease: a request for its session waits that long.
            adopt_wait=settings.lease_ttl + 1.0,
            on_replay=lambda events: self.metrics.replayed("mcp", events),
            replica=settings.replica_id,
            fast=settings.mcp_fast_transport,
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

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Storage, the job engine and the MCP sessions, from start to clean stop: enter it in the host's lifespan.

        While it runs, SIGINT and SIGTERM first end the open streams and interrupt the running
        jobs (`begin_shutdown`), then reach the server's own handler: a streaming tool call
        would otherwise hold the server's graceful shutdown until its job ends.
        """
        if self._user_of is None and not self.settings.is_loopback():
            logger.warning(
                "SERVICE_HOST=%s is reachable from other machines and no authentication is configured: "
                "anyone who can reach this port can run jobs. Set SERVICE_AUTH_TOKENS.",
                self.settings.host,
            )
        if self.tracer_provider is not None:
            install_globally(self.tracer_provider)
        try:
            with _before_signals(self.begin_shutdown):
                async with self._lifecycle.running():
                    yield
        finally:
            if self.tracer_provider is not None:
                self.tracer_provider.shutdown()  # sends the spans still batched

    def begin_shutdown(self) -> None:
        """End the open streams and interrupt the running jobs, so that the server's shutdown need not wait."""
        self._lifecycle.begin_shutdown()

    def install(
        self,
        app: FastAPI,
        prefix: str = "",
        *,
        mcp: bool = True,
        jobs: bool = True,
        dashboard: bool = True,
        health: bool = True,
        metrics: bool | None = None,
    ) -> None:
        """Add the service's routes to `app` under `prefix` (`/notify`: `/notify/mcp`, `/notify/jobs`...).

        Each part can be left out; `metrics` (`/metrics`) defaults to `SERVICE_METRICS`.
        """
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"prefix {prefix!r} must start with '/' and not end with one (or be empty)")
        if mcp:
            # The first route: the busiest, and the router tries its routes in order.
            app.router.routes.insert(0, self._mcp_route(prefix + MCP_PATH))
        if jobs:
            api = self._rest_guards(host_check=True)
            include_guarded(app, creation_router(self._job_create()), prefix=prefix, middleware=api)
            include_guarded(app, job_routes.router, prefix=prefix, middleware=api)
        if health:
            include_guarded(app, health_routes.router, prefix=prefix, middleware=self._rest_guards(host_check=False))
        if metrics if metrics is not None else self.settings.metrics:
            include_guarded(app, metrics_routes.router, prefix=prefix, middleware=self._rest_guards(host_check=True))
        if dashboard:
            pages = self._page_guards()
            include_guarded(app, dashboard_routes, prefix=prefix, middleware=pages)
            app.router.routes.append(dashboard_assets(prefix, middleware=pages))

    def _job_create(self) -> type[JobCreate]:
        return spec_model(self._limits, base=JobCreate, name="JobCreate")

    def _mcp_route(self, path: str) -> LabelledRoute:
        endpoint = TrimmedHeadersMiddleware(StreamableHTTPASGIApp(self.sessions))
        auth: list[Middleware] = []
        if self._user_of is not None:
            # The SDK's own: 401 with WWW-Authenticate without a principal, and the session
            # manager binds each session to the principal that opened it.
            auth = [
                Middleware(AuthenticationMiddleware, user_of=self._user_of),
                Middleware(RequireAuthMiddleware, required_scopes=[]),
                Middleware(AuthContextMiddleware),
            ]
        middleware = [
            *self._outer_guards(rpc=True),
            Middleware(HeaderLimitMiddleware, max_bytes=self.settings.max_header_bytes),
            *auth,
        ]
        # A route, not a mount: a mount would answer `/mcp` with a 307 redirect to `/mcp/`.
        return LabelledRoute(path, endpoint, methods=["GET", "POST", "DELETE"], middleware=middleware)

    def _outer_guards(self, *, rpc: bool) -> list[Middleware]:
        """Request ids, metrics and errors as JSON: what every route of the service has, outermost."""
        return [
            Middleware(RequestIdMiddleware),
            *([Middleware(HttpMetricsMiddleware, metrics=self.metrics)] if self.settings.metrics else []),
            Middleware(ServerErrorMiddleware, handler=internal_error(rpc=rpc)),
            Middleware(JsonErrorsMiddleware, rpc=rpc),
        ]

    def _page_guards(self) -> list[Middleware]:
        return [
            *self._outer_guards(rpc=False),
            Middleware(HeaderLimitMiddleware, max_bytes=self.settings.max_header_bytes),
            Middleware(HostCheckMiddleware, allowed_hosts=self.settings.mcp_allowed_hosts()),
        ]

    def _rest_guards(self, *, host_check: bool) -> list[Middleware]:
        settings = self.settings
        return [
            *self._outer_guards(rpc=False),
            Middleware(HeaderLimitMiddleware, max_bytes=settings.max_header_bytes),
            *([Middleware(HostCheckMiddleware, allowed_hosts=settings.mcp_allowed_hosts())] if host_check else []),
            Middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_request_body),
            *([Middleware(AuthenticationMiddleware, user_of=self._user_of)] if self._user_of is not None else []),
            Middleware(ExceptionMiddleware, handlers=exception_handlers()),
            Middleware(ProvideServices, services=self._services),
        ]


@contextmanager
def _before_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` on the event loop as SIGINT or SIGTERM arrives, then the handler that was there before.

    The server's handler (uvicorn's, say) starts its shutdown, which waits for open responses
    before the lifespan ends: the callback ends them. Signals can be handled in the main
    thread only; elsewhere (an app run in a thread by a test) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in SHUTDOWN_SIGNALS}

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        before = previous[signal.Signals(sig)]
        if callable(before):
            before(sig, frame)
        elif before == signal.SIG_DFL:  # what the signal would have done: end the process
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for sig in SHUTDOWN_SIGNALS:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handle:
                signal.signal(sig, before)
