"""Which `tools/call` becomes a task, and making it: a middleware on the MCP server, ahead of the SDK's handling.

2026-07-28: the server decides. A call whose request declared the extension becomes a task
when its tool can run as one and expects to run at least `SERVICE_TASK_MIN_SECONDS`; any other
call streams inline, as before (a tool that must be a task refuses a request without the
extension, -32021). 2025-11-25: the client decides, with `params.task`; the answer is the nested
`CreateTaskResult`, which the SDK's handler path would refuse (it checks a `tools/call` result
against `CallToolResult`), hence a middleware that answers without it. Either way the task's
job is admitted and recorded before the answer (`JobEngine.start`), so that a `tasks/get` on any
replica finds it at once.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    METHOD_NOT_FOUND,
    ServerTasksCapability,
    ServerTasksRequestsCapability,
    TasksCallCapability,
    TasksCancelCapability,
    TasksListCapability,
    TasksToolsCapability,
)
from pydantic import ValidationError

from service.domain.jobs import McpTask
from service.jobs.engine import TooManyJobs
from service.stores.base import StoreError
from service.tasks import LEGACY, MODERN
from service.tasks.handlers import declared, missing_extension
from service.tasks.wire import legacy_task, modern_created
from service.tools.base import McpTool, error_result

__all__ = ["LEGACY_CAPABILITY", "POLL_INTERVAL_MS", "TaskCreation"]

POLL_INTERVAL_MS = 1000
"""How often a client is asked to look at a task (`pollIntervalMs`): a job's notifications are readable meanwhile."""
LEGACY_CAPABILITY = ServerTasksCapability(
    list=TasksListCapability(),
    cancel=TasksCancelCapability(),
    requests=ServerTasksRequestsCapability(tools=TasksToolsCapability(call=TasksCallCapability())),
).model_dump(mode="json", by_alias=True, exclude_none=True)


class TaskCreation:
    """A `ServerMiddleware`: answers a `tools/call` with a task where the era's rules say so, and advertises the
    2025 `tasks` capability in `initialize` (the SDK fills in only `extensions`, the 2026 advertisement)."""

    def __init__(self, tools: dict[str, McpTool], *, min_seconds: float, ttl_ms: int | None) -> None:
        self._tools = tools
        self._min_seconds = min_seconds
        self._ttl_ms = ttl_ms

    async def __call__(self, ctx: ServerRequestContext[Any], call_next: CallNext) -> Any:
        if ctx.method == "initialize":
            return _with_legacy_capability(await call_next(ctx))
        if ctx.method != "tools/call" or ctx.request_id is None or not isinstance(ctx.params, dict):
            return await call_next(ctx)
        tool = self._tools.get(str(ctx.params.get("name")))
        if tool is None or tool.tasks is None:
            return await call_next(ctx)
        arguments = ctx.params.get("arguments") or {}
        if ctx.protocol_version == MODERN:
            if not declared(ctx):
                if tool.tasks.required:
                    raise missing_extension()
                return await call_next(ctx)
            try:
                long_enough = tool.tasks.expected_seconds(arguments) >= self._min_seconds
            except ValidationError:
                return await call_next(ctx)  # the tool's own answer says what is wrong
            if not long_enough:
                return await call_next(ctx)
            return await self._create(ctx, call_next, tool, arguments, MODERN, None)
        if ctx.protocol_version == LEGACY:
            asked = ctx.params.get("task")
            if isinstance(asked, dict):
                ttl = asked.get("ttl")
                ttl_ms = ttl if isinstance(ttl, int) and ttl >= 0 else None
                return await self._create(ctx, call_next, tool, arguments, LEGACY, ttl_ms)
            if tool.tasks.required:
                raise MCPError(code=METHOD_NOT_FOUND, message=f"Tool {tool.definition.name!r} runs only as a task")
        return await call_next(ctx)

    async def _create(
        self,
        ctx: ServerRequestContext[Any],
        call_next: CallNext,
        tool: McpTool,
        arguments: Any,
        era: str,
        ttl_ms: int | None,
    ) -> Any:
        assert tool.tasks is not None
        if ttl_ms is None or (self._ttl_ms is not None and ttl_ms > self._ttl_ms):
            ttl_ms = self._ttl_ms  # a client may ask for less than the service keeps, not for more
        task = McpTask(era=era, tool=tool.definition.name, ttl_ms=ttl_ms, poll_ms=POLL_INTERVAL_MS)
        try:
            job = await tool.tasks.start(ctx, arguments if isinstance(arguments, dict) else {}, task)
        except ValidationError:
            return await call_next(ctx)  # the tool's own answer says what is wrong
        except TooManyJobs as exc:
            return error_result(str(exc))
        except StoreError as exc:
            return error_result(f"The job store is unavailable; try again shortly ({exc})")
        if era == MODERN:
            return modern_created(job, task)
        return {"task": legacy_task(job, task, None)}


def _with_legacy_capability(result: Any) -> Any:
    """The `initialize` result (serialized by the SDK's runner before it reaches a middleware), with the 2025
    `tasks` capability when that is the version agreed on."""
    if isinstance(result, dict) and result.get("protocolVersion") == LEGACY:
        capabilities = result.get("capabilities")
        if isinstance(capabilities, dict):
            return {**result, "capabilities": {**capabilities, "tasks": LEGACY_CAPABILITY}}
    return result
