"""Request guards for the whole app, in front of the routes."""

from __future__ import annotations

from collections.abc import Sequence

from mcp.server.transport_security import RequestBodyLimitMiddleware
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send


class HostCheck:
    """DNS-rebinding protection for the REST routes, with the Host values `/mcp` accepts.

    The SDK checks `/mcp` itself. Without this, a web page whose name an attacker rebinds to
    127.0.0.1 could list, start and cancel jobs on a service that runs without authentication.
    `/healthz` stays open to probes that address the machine by any name.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str], exempt: Sequence[str]) -> None:
        self.app = app
        self.exact = {host for host in allowed_hosts if not host.endswith(":*")}
        self.any_port = tuple(host[:-1] for host in allowed_hosts if host.endswith(":*"))
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.exempt:
            host = Headers(scope=scope).get("host", "")
            if host not in self.exact and not (self.any_port and host.startswith(self.any_port)):
                await JSONResponse({"detail": "Invalid Host header"}, status_code=421)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """The SDK's body-size limit for every route but `/mcp`, whose session manager applies its own."""

    def __init__(self, app: ASGIApp, *, max_body_size: int, skip: str) -> None:
        self.app = app
        self.limited = RequestBodyLimitMiddleware(app, max_body_size)
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.skip:
            await self.app(scope, receive, send)
        else:
            await self.limited(scope, receive, send)


class HeaderLimit:
    """431 for requests whose headers add up to more than `max_bytes`.

    uvicorn's default HTTP parser (httptools) sets no limit of its own: a 2 MB header was read
    and served. The answer is plain text here, shaped into JSON (or JSON-RPC on `/mcp`) by
    `JsonErrors` like every other error written as text.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and sum(len(name) + len(value) for name, value in scope["headers"]) > self.max_bytes:
            message = f"Request headers are larger than {self.max_bytes} bytes (SERVICE_MAX_HEADER_BYTES)"
            await PlainTextResponse(message, status_code=431)(scope, receive, send)
            return
        await self.app(scope, receive, send)
