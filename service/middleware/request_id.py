"""`X-Request-ID`: the client's, if it sent a sound one, else one made here; echoed on the response and
put in the logging context with the MCP session id, so that every line of the request carries both."""

from __future__ import annotations

import random
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.telemetry import context

__all__ = ["RequestIdMiddleware"]

SOUND_ID = re.compile(rb"[\x21-\x7e]{1,128}")
"""Visible ASCII, at most 128 characters: nothing that could break a log line or a header."""


SCOPE_KEY = "service.request_id"
"""Left in the scope by the first of these a request meets: an app may apply one to every path
(`create_app` does), and the service's routes each carry their own."""


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        given = session = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
            elif name == b"mcp-session-id":
                session = value
        # A correlation id, not a secret: the process's PRNG makes one without a system call (as uuid4's would).
        raw = given if given is not None and SOUND_ID.fullmatch(given) else b"%032x" % random.getrandbits(128)
        # Set, not reset after: the exception handlers, outside this middleware, still see them. Each
        # request runs in a task of its own under uvicorn; a caller running several in one task
        # (httpx's ASGI transport) gets each request's values, never a previous one's.
        context.request_id.set(raw.decode())
        context.session_id.set(session.decode() if session is not None and SOUND_ID.fullmatch(session) else None)
        scope[SCOPE_KEY] = raw
        header = (b"x-request-id", raw)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
