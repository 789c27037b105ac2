"""HTTP-level adjustments in front of the SDK's StreamableHTTP endpoint."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class TrimmedHeaders:
    """Strips the whitespace around header values before the SDK sees them.

    RFC 9110 (section 5.5) says it is not part of the value. uvicorn's default parser
    (httptools) keeps trailing whitespace, and the SDK compares `Mcp-Name` and `Mcp-Param-*`
    with the request body as sent, so a client that pads a header would be refused.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "headers": [(name, value.strip(b" \t")) for name, value in scope["headers"]]}
        await self.app(scope, receive, send)
