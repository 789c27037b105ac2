"""Header values without the whitespace around them, as RFC 9110 reads them."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["TrimmedHeadersMiddleware"]


class TrimmedHeadersMiddleware:
    """Strips the whitespace around header values before the SDK sees them.

    RFC 9110 (section 5.5) says it is not part of the value. uvicorn's default parser
    (httptools) keeps trailing whitespace, and the SDK compares `Mcp-Name` and `Mcp-Param-*`
    with the request body as sent, so a client that pads a header would be refused.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Copied only when a value is padded: a GET stream holds its scope for as long as it is open.
        if scope["type"] == "http" and any(_padded(value) for _, value in scope["headers"]):
            scope = {**scope, "headers": [(name, value.strip(_SPACE)) for name, value in scope["headers"]]}
        await self.app(scope, receive, send)


_SPACE = b" \t"
_EDGES = (b" ", b"\t")


def _padded(value: bytes) -> bool:
    return value.startswith(_EDGES) or value.endswith(_EDGES)
