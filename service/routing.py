"""How the service's routes carry their own middleware, wherever they are installed.

A host's app has its own middleware, and the service must not replace it nor run inside it
as a second app (a mount answers `/mcp` with a 307, and hides the routes from the host's
OpenAPI). So the service's routes join the host's router, each wrapped in the middleware it
needs, as Starlette's `Route(middleware=...)` does: the host's requests never pass through
them.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Scope
from typing_extensions import override

__all__ = ["LabelledRoute", "guarded", "include_guarded"]


class LabelledRoute(Route):
    """A Starlette route that leaves itself in the scope when it matches, as FastAPI's own routes do: the
    HTTP metrics label a request by its route's template, and FastAPI's router does not set it for this one."""

    @override
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def guarded(app: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
    """`app` inside `middleware`, the first outermost (the order of `Starlette(middleware=...)`)."""
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
    return app


def include_guarded(app: FastAPI, router: APIRouter, *, prefix: str, middleware: Sequence[Middleware]) -> None:
    """`app.include_router(router, prefix=prefix)`, what it adds wrapped in `middleware`.

    What `include_router` adds to the app's router differs between FastAPI versions (a copy
    of each route, or one route standing for the whole router, since 0.165); either way the
    router calls each of its routes' `handle`, and that is what is wrapped, on the objects
    this inclusion added and no other.
    """
    before = {id(route) for route in app.router.routes}
    app.include_router(router, prefix=prefix)
    for route in app.router.routes:
        if id(route) not in before:
            route.handle = guarded(route.handle, middleware)  # type: ignore[method-assign,assignment]
