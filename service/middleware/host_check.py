"""DNS-rebinding protection for the REST routes and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HostCheckMiddleware"]


class HostCheckMiddleware:
    """421 unless the Host header is one `/mcp` accepts too.

    The SDK checks `/mcp` itself. Without this, a web page whose name an attacker rebinds to
    127.0.0.1 could list, start and cancel jobs on a service that runs without authentication.
    The health route goes without it: probes address the machine by any name.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.exact = {host for host in allowed_hosts if not host.endswith(":*")}
        self.any_port = tuple(host[:-1] for host in allowed_hosts if host.endswith(":*"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            if host not in self.exact and not (self.any_port and host.startswith(self.any_port)):
                await JSONResponse({"detail": "Invalid Host header"}, status_code=421)(scope, receive, send)
                return
        await self.app(scope, receive, send)
