"""Who is calling, decided once per request of the service's routes and left in the scope as `user`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.authentication import UnauthenticatedUser
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["AuthenticationMiddleware", "UserOf"]

UserOf = Callable[[Request], Awaitable[AuthenticatedUser | None]]
"""The user a request authenticates as, or None (`service.auth` makes one from a host's `authenticate`)."""


class AuthenticationMiddleware:
    """Starlette's, for an authenticator that takes the whole `Request`, as a host's own does.

    The user is the SDK's `AuthenticatedUser`: the SDK binds each MCP session to it, and
    `service.auth.principal_of` reads it on the REST routes. Deciding is left to each route
    (`RequireAuthMiddleware` on `/mcp`, the `PrincipalDep` dependency on the others).
    """

    def __init__(self, app: ASGIApp, *, user_of: UserOf) -> None:
        self.app = app
        self.user_of = user_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            user = await self.user_of(Request(scope, receive))
            scope["user"] = user if user is not None else UnauthenticatedUser()
        await self.app(scope, receive, send)
