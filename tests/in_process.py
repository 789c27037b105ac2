"""The service in this test's process: no uvicorn, no port, feedback in milliseconds.

`running_app` builds the app with `create_app` and runs its lifespan; `rest_client` speaks
HTTP to it through httpx's ASGI transport; `mcp_over_asgi` puts the SDK's client on the
same app's `/mcp` (the whole HTTP stack, middleware and transport included); `mcp_server`
gives the SDK's in-memory `Client` the MCP server alone (the SDK's own testing guide's way).
End-to-end tests against real processes (`harness.service.running_service`) stay for what
only a real server shows: sockets, streaming, signals, several processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from harness.clients import Received
from service import McpTool, __version__
from service.app import ServiceApp, create_app
from service.domain.jobs import SpecLimits, spec_model
from service.jobs.engine import JobEngine, JobLimits
from service.settings import Settings, StoreBackend
from service.stores.base import Retention
from service.stores.memory import MemoryStorage
from service.tools.server import build_server

BASE_URL = "http://127.0.0.1:8000"  # what the Host check accepts; nothing listens there


@asynccontextmanager
async def running_app(*, extra_tools: tuple[McpTool, ...] = (), **settings: Any) -> AsyncIterator[ServiceApp]:
    """The app with the memory store (unless `store=` says otherwise), its lifespan running."""
    settings = {"store": StoreBackend.MEMORY, **settings}
    app = create_app(Settings(_env_file=None, **settings), extra_tools=extra_tools)  # type: ignore[call-arg]
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def rest_client(app: ServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@asynccontextmanager
async def mcp_over_asgi(
    app: ServiceApp, *, mode: str = "legacy", received: Received | None = None
) -> AsyncIterator[Client]:
    """The SDK's client on the app's `/mcp`. The ASGI transport hands over a response once it is
    complete: a tool call's notifications arrive with its result, and a GET stream never does."""
    received = received if received is not None else Received()
    async with (
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url=BASE_URL) as http,
        Client(
            streamable_http_client(f"{BASE_URL}/mcp", http_client=http),
            mode=mode,
            logging_callback=received.on_log,
            log_level="info",
        ) as client,
    ):
        yield client


@asynccontextmanager
async def mcp_server(
    *, limits: SpecLimits | None = None, job_limits: JobLimits | None = None, received: Received | None = None
) -> AsyncIterator[tuple[Client, JobEngine]]:
    """The SDK's in-memory client on the MCP server alone, with its engine on a memory store."""
    received = received if received is not None else Received()
    storage = MemoryStorage(max_events_per_partition=10_000, retention=Retention())
    engine = JobEngine(storage, job_limits or JobLimits(max_jobs=100, max_jobs_per_session=10))
    limits = limits or SpecLimits(max_count=1000, min_interval=0, max_interval=60, max_caller_length=200)
    server = build_server(engine, spec=spec_model(limits), version=__version__)
    async with (
        storage,
        engine.running(),
        Client(server, mode="legacy", logging_callback=received.on_log, log_level="info") as client,
    ):
        yield client, engine
