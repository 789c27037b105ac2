"""A limit on the size of request headers."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HeaderLimitMiddleware"]


class HeaderLimitMiddleware:
    """431 for requests whose headers add up to more than `max_bytes`.

    uvicorn's default HTTP parser (httptools) sets no limit of its own: a 2 MB header was read
    and served. The answer is plain text here, shaped into JSON (or JSON-RPC on `/mcp`) by
    `JsonErrorsMiddleware` like every other error written as text.
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
