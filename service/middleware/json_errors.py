"""Plain-text errors from lower layers, answered as JSON like every other error."""

from __future__ import annotations

import json
from http import HTTPStatus

from mcp_types import INVALID_REQUEST
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import rpc_error

__all__ = ["JsonErrorsMiddleware"]


class JsonErrorsMiddleware:
    """Rewrites plain-text or untyped error responses (the SDK's Host, Origin and Content-Type checks,
    its body size limit) as JSON: a JSON-RPC error on the MCP endpoint (`rpc`), `{"detail": ...}` elsewhere."""

    def __init__(self, app: ASGIApp, *, rpc: bool = False) -> None:
        self.app = app
        self.rpc = rpc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        body = bytearray()

        async def send_json_errors(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                content_type = MutableHeaders(scope=message).get("content-type", "")
                if not content_type or content_type.startswith("text/plain"):
                    held = message
                    return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            # An empty body (the SDK's 405 to a GET in the 2026 era, say) gets the status's own phrase.
            text = body.decode(errors="replace").strip() or HTTPStatus(held["status"]).phrase
            payload = rpc_error(INVALID_REQUEST, text) if self.rpc else {"detail": text}
            encoded = json.dumps(payload).encode()
            headers = MutableHeaders(raw=list(held["headers"]))
            headers["content-type"] = "application/json"
            headers["content-length"] = str(len(encoded))
            await send({**held, "headers": headers.raw})
            await send({"type": "http.response.body", "body": encoded})

        await self.app(scope, receive, send_json_errors)
