"""Any tool as a task: a host's tool that says it can be one (its definition's `execution.taskSupport`) runs its
own handler as the task's job, and its answer is kept in the job's record for its client to fetch from any replica.

Such a job cannot move: the coroutine died with its process, and running a host's tool twice
could repeat its effects. A replica that dies under one leaves it `interrupted` (a survivor's
claim records it so), and the task answers that as its result; a rolling restart does the same
with the tasks still running on the replica it stops.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from service.auth import principal_of
from service.domain.jobs import JobOrigin, JobRecord, JobSpec, McpTask
from service.jobs.engine import JobEngine
from service.tasks.wire import dump
from service.tools.base import McpTool, TaskSupport, error_result

__all__ = ["run_as_tasks"]

logger = logging.getLogger(__name__)


def run_as_tasks(engine: JobEngine, tool: McpTool) -> McpTool:
    """`tool`, able to run as a task if its definition says it can (`optional` or `required`); else as it is."""
    execution = tool.definition.execution
    support = execution.task_support if execution is not None else None
    if tool.tasks is not None or support not in ("optional", "required"):
        return tool
    name = tool.definition.name

    async def start(ctx: ServerRequestContext[Any], arguments: dict[str, Any], task: McpTask) -> JobRecord:
        async def body() -> dict[str, Any]:
            try:
                return {"result": dump(await tool.handler(ctx, arguments))}
            except MCPError as exc:  # the task fails with it: a JSON-RPC error, not a tool's
                return {"error": exc.error.model_dump(mode="json", by_alias=True, exclude_none=True)}
            except Exception:
                logger.exception("tool %s failed (task)", name)
                return {"result": dump(error_result(f"Internal error in {name}: see the server log"))}

        owner = principal_of(ctx.request) if ctx.request is not None else None
        spec = JobSpec(interval=0, count=1, caller=name)  # the record's shape; the body is the work
        moving = task.model_copy(update={"resumable": False})
        return await engine.start(spec, origin=JobOrigin.MCP, owner=owner, task=moving, body=body)

    def result(job: JobRecord) -> CallToolResult:
        if job.outcome is not None and "result" in job.outcome:
            return CallToolResult.model_validate(job.outcome["result"])
        return error_result(f"The task {job.status.value} before its tool answered (job {job.id}).")

    # A host's tool says nothing of how long it runs: when the client can take a task, it gets one.
    tasks = TaskSupport(lambda arguments: math.inf, start, result, required=support == "required")
    return McpTool(tool.definition, tool.handler, tasks)
