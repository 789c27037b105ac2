"""A limit on request bodies, for the routes without their own."""

from __future__ import annotations

from collections.abc import Sequence

from mcp.server.transport_security import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    """The SDK's body-size limit (413), for the routes that do not apply one of their own (`/mcp` does)."""

    def __init__(self, app: ASGIApp, *, max_body_size: int, exempt: Sequence[str]) -> None:
        self.app = app
        self.limited = RequestBodyLimitMiddleware(app, max_body_size)
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.exempt:
            await self.app(scope, receive, send)
        else:
            await self.limited(scope, receive, send)
