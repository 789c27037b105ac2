"""Every error leaves the service as JSON, including the ones lower layers write as plain text."""

from __future__ import annotations

import json

from mcp_types import INVALID_REQUEST
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class JsonErrors:
    """Rewrites plain-text or untyped error responses (the SDK's Host, Origin and Content-Type checks,
    its body size limit) as JSON: a JSON-RPC error on the MCP endpoint, `{"detail": ...}` everywhere else."""

    def __init__(self, app: ASGIApp, *, mcp_path: str = "/mcp") -> None:
        self.app = app
        self.mcp_path = mcp_path

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
            text = body.decode(errors="replace").strip()
            payload = (
                {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": text}}
                if scope["path"] == self.mcp_path
                else {"detail": text}
            )
            encoded = json.dumps(payload).encode()
            headers = MutableHeaders(raw=list(held["headers"]))
            headers["content-type"] = "application/json"
            headers["content-length"] = str(len(encoded))
            await send({**held, "headers": headers.raw})
            await send({"type": "http.response.body", "body": encoded})

        await self.app(scope, receive, send_json_errors)
