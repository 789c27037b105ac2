"""`tasks/get`, `tasks/update`, `tasks/cancel` (both eras) and `tasks/result`, `tasks/list` (2025-11-25 only).

A task is a job (`JobRecord.task`), so each of these reads or cancels the job through the
engine, wherever it runs: any replica answers for any task, from the shared store. The checks
come in the order the 2026 text and the conformance suite expect: the extension declared on
the request (-32021), then the `Mcp-Name` header against `taskId` (-32020, HTTP 400: the SDK
checks that header only for the core methods it knows), then the task itself (-32602, for an
unknown task, an expired one, and one of another principal alike).
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import decode_header_value
from mcp_types import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolResult,
    ClientCapabilities,
    ErrorData,
    MissingRequiredClientCapabilityErrorData,
    RequestParams,
)
from pydantic import Field

from service.auth import principal_of
from service.domain.jobs import JobRecord, McpTask, utcnow
from service.jobs.engine import JobEngine
from service.tasks import EXTENSION, LEGACY, MODERN, RELATED_TASK
from service.tasks.wire import dump, error_of, legacy_task, modern_detailed, status_of
from service.tools.base import McpTool

__all__ = ["declared", "install_task_methods", "missing_extension"]

LIST_PAGE = 50


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")


class UpdateParams(TaskParams):
    # Any answers: keys the task never asked for are ignored, as the 2026 text says.
    input_responses: dict[str, Any] = Field(alias="inputResponses")


class ListParams(RequestParams):
    cursor: str | None = None


def declared(ctx: ServerRequestContext[Any]) -> bool:
    """Whether the request declared the extension (2026: per request, in its `_meta`; inferred from nothing else)."""
    capabilities = ctx.session.client_capabilities
    return capabilities is not None and EXTENSION in (capabilities.extensions or {})


def missing_extension() -> MCPError:
    data = MissingRequiredClientCapabilityErrorData(
        required_capabilities=ClientCapabilities(extensions={EXTENSION: {}})
    )
    return MCPError(
        code=MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"Missing required client capability: the {EXTENSION} extension",
        data=data.model_dump(mode="json", by_alias=True, exclude_none=True),
    )


def install_task_methods(server: Server[Any], engine: JobEngine, tools: dict[str, McpTool]) -> None:
    """Register the task methods on `server`, and advertise the 2026 extension in `server/discover`."""
    server.extensions[EXTENSION] = {}

    async def find(ctx: ServerRequestContext[Any], params: TaskParams) -> tuple[JobRecord, McpTask]:
        if ctx.protocol_version not in (MODERN, LEGACY):
            raise MCPError(code=METHOD_NOT_FOUND, message=f"Method not found: {ctx.method} (tasks came in {LEGACY})")
        if ctx.protocol_version == MODERN:
            if not declared(ctx):
                raise missing_extension()
            named = ctx.request.headers.get("mcp-name") if ctx.request is not None else None
            if named is not None and decode_header_value(named) != params.task_id:
                raise MCPError(
                    code=HEADER_MISMATCH,
                    message=f"Header mismatch: Mcp-Name {named[:64]!r} is not the request's taskId",
                )
        job = await engine.get(params.task_id)
        owner = principal_of(ctx.request) if ctx.request is not None else None
        if job is None or job.task is None or job.owner != owner or _expired(job, job.task):
            raise MCPError(code=INVALID_PARAMS, message=f"Task not found: {params.task_id[:64]!r}")
        return job, job.task

    def result_of(job: JobRecord, task: McpTask) -> CallToolResult | None:
        """The tool's result, once the job has ended (None before, and if the tool is no longer served)."""
        tool = tools.get(task.tool)
        if not job.status.is_final or tool is None or tool.tasks is None:
            return None
        return tool.tasks.result(job)

    def only_in(era: str, ctx: ServerRequestContext[Any], method: str) -> None:
        if ctx.protocol_version != era:  # 2026 removed `tasks/result` and `tasks/list`, and made `tasks/update`
            raise MCPError(code=METHOD_NOT_FOUND, message=f"Method not found: {method}")

    async def get(ctx: ServerRequestContext[Any], params: TaskParams) -> dict[str, Any]:
        job, task = await find(ctx, params)
        if ctx.protocol_version == MODERN:
            return modern_detailed(job, task, result_of(job, task))
        return legacy_task(job, task, result_of(job, task))

    async def update(ctx: ServerRequestContext[Any], params: UpdateParams) -> dict[str, Any]:
        only_in(MODERN, ctx, "tasks/update")
        await find(ctx, params)  # none of this service's own tasks asks for input: every answer is one it ignores
        return {}

    async def cancel(ctx: ServerRequestContext[Any], params: TaskParams) -> dict[str, Any]:
        job, task = await find(ctx, params)
        result = result_of(job, task)
        if ctx.protocol_version == MODERN:
            if not job.status.is_final:
                await engine.cancel(job.id)
            return {}  # an acknowledgement, the same for a task that had ended already
        if job.status.is_final:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Cannot cancel task: already in terminal status {status_of(job, task, LEGACY, result)!r}",
            )
        job = await engine.cancel(job.id) or job
        return legacy_task(job, task, result_of(job, task))

    async def result(ctx: ServerRequestContext[Any], params: TaskParams) -> dict[str, Any]:
        only_in(LEGACY, ctx, "tasks/result")
        job, task = await find(ctx, params)
        if not job.status.is_final:
            async for _ in engine.follow(job.id):  # until it ends, on whichever replica runs it
                pass
            job = await engine.get(job.id) or job
        if (error := error_of(job, task)) is not None:  # the call's own JSON-RPC error, as it would have been
            raise MCPError.from_error_data(ErrorData.model_validate(error))
        answer = result_of(job, task)
        if answer is None:
            raise MCPError(code=INVALID_PARAMS, message=f"Task {job.id} has no result: its tool {task.tool!r} is gone")
        return {**dump(answer), "_meta": {RELATED_TASK: {"taskId": job.id}}}

    async def list_tasks(ctx: ServerRequestContext[Any], params: ListParams) -> dict[str, Any]:
        only_in(LEGACY, ctx, "tasks/list")
        cursor = params.cursor or "0"
        if not cursor.isdigit():
            raise MCPError(code=INVALID_PARAMS, message=f"Invalid cursor: {cursor[:64]!r}")
        offset = int(cursor)
        owner = principal_of(ctx.request) if ctx.request is not None else None
        jobs = await engine.list_jobs(owner=owner, limit=LIST_PAGE, offset=offset)
        tasks = [
            legacy_task(job, job.task, result_of(job, job.task))
            for job in jobs
            if job.task is not None and not _expired(job, job.task)
        ]
        page: dict[str, Any] = {"tasks": tasks}
        if len(jobs) == LIST_PAGE:
            page["nextCursor"] = str(offset + LIST_PAGE)
        return page

    server.add_request_handler("tasks/get", TaskParams, get)
    server.add_request_handler("tasks/update", UpdateParams, update)
    server.add_request_handler("tasks/cancel", TaskParams, cancel)
    server.add_request_handler("tasks/result", TaskParams, result)
    server.add_request_handler("tasks/list", ListParams, list_tasks)


def _expired(job: JobRecord, task: McpTask) -> bool:
    """A task is kept for its `ttlMs` from its creation, once it has ended (a running task stays)."""
    if not job.status.is_final or task.ttl_ms is None:
        return False
    return (utcnow() - job.created_at).total_seconds() * 1000 > task.ttl_ms
