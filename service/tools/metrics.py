"""MCP requests and notifications received, by method and protocol era: a context-tier middleware of the SDK's
server (`Server.middleware`), which sees every inbound message with its method and negotiated version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from service.telemetry.metrics import MCP_METHODS, Metrics, era_of

__all__ = ["McpMetricsMiddleware"]


class McpMetricsMiddleware:
    def __init__(self, metrics: Metrics) -> None:
        self._requests = metrics.mcp_requests
        self._counters: dict[tuple[str, str | None], Callable[[], None]] = {}
        """Each (method, version) seen: its counter's `inc` (bounded: unknown methods are `other`)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        method = ctx.method if ctx.method in MCP_METHODS else "other"
        count = self._counters.get((method, ctx.protocol_version))
        if count is None:
            era = era_of(ctx.protocol_version)
            count = self._counters[(method, ctx.protocol_version)] = self._requests.labels(method, era).inc
        count()
        return await call_next(ctx)
