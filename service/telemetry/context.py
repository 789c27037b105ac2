"""What a log line says it is about: the request, MCP session and job it was written for.

Context variables, so that each asyncio task sees its own: a job's task is started with
the request's context and then names its job; the request that started it keeps its own.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["job_id", "request_id", "session_id"]

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The HTTP request's id: the client's `X-Request-ID`, or one made for it (`RequestIdMiddleware`)."""
session_id: ContextVar[str | None] = ContextVar("session_id", default=None)
"""The MCP session the request belongs to (its `Mcp-Session-Id`), or the job's session."""
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
"""The job whose task is running."""
