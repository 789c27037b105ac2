"""The exception handlers of the service's routes, for what would otherwise leave as a 500 in plain text.

Every error leaves the service as JSON; `service.middleware.json_errors` reshapes what lower
layers (the SDK, Starlette, our guards) write as text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from uuid import uuid4

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from mcp_types import INTERNAL_ERROR
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from service.stores.base import StoreError
from service.telemetry import context

__all__ = ["exception_handlers", "internal_error", "rpc_error"]

logger = logging.getLogger(__name__)

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

Handler = Callable[[Request, Any], Awaitable[Response]]


def exception_handlers() -> dict[type[Exception], Handler]:
    """What the service's routes answer for each exception (`internal_error` for the rest)."""
    return {RequestValidationError: invalid_request, HTTPException: http_error, StoreError: storage_unavailable}


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, without the `input` it echoes: that may be what JSON cannot carry (NaN,
    infinity, a lone surrogate), which made the default handler itself fail with a 500."""
    detail = [
        {"loc": [_json_safe(part) for part in error["loc"]], "msg": _json_safe(error["msg"]), "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def http_error(request: Request, exc: HTTPException) -> Response:
    """FastAPI's own answer, with a 405's `Allow` listing every method of the path, not the first route's."""
    if exc.status_code == 405:
        allowed = ", ".join(sorted(_methods_of(request.app.router.routes, request.scope)))
        exc = HTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": allowed})
    return await http_exception_handler(request, exc)


async def storage_unavailable(request: Request, exc: StoreError) -> JSONResponse:
    """The store is failing (disk full, database locked): say so, and let the client retry later."""
    return JSONResponse({"detail": f"Storage unavailable: {exc}"}, status_code=503, headers={"Retry-After": "5"})


def internal_error(*, rpc: bool, outermost: bool = False) -> Handler:
    """The answer to a bug, as a JSON-RPC error (`rpc`, on the MCP endpoint) or `{"detail": ...}`.

    `outermost`: an app's own handler, which Starlette runs outside every middleware, `RequestIdMiddleware`
    included, so it sets `X-Request-ID` itself; a route's runs inside it.
    """

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        """The client gets an id to quote, the log gets the same id and the traceback."""
        request_id = context.request_id.get() or uuid4().hex
        logger.error("request %s: %s %s failed", request_id, request.method, request.url.path, exc_info=exc)
        message = f"Internal server error (request {request_id})"
        body = rpc_error(INTERNAL_ERROR, message) if rpc else {"detail": message, "request_id": request_id}
        return JSONResponse(body, status_code=500, headers={"X-Request-ID": request_id} if outermost else None)

    return internal_error


def _methods_of(routes: Iterable[BaseRoute], scope: Scope) -> set[str]:
    """The methods some route serves at this path, asked of each route through its public `matches`."""
    return {
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    }


def rpc_error(code: int, message: str) -> dict[str, Any]:
    """A JSON-RPC error answering no request it could name (`id: null`)."""
    return {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}


def _json_safe(value: object) -> object:
    """Strings as JSON can carry them: a lone surrogate becomes its escape sequence."""
    return value.encode("utf-8", "backslashreplace").decode() if isinstance(value, str) else value
