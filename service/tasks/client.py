"""The Python SDK's `Client`, driving 2026-07-28 tasks: a `ClientExtension`, and the calls that fetch a task later.

    from mcp import Client
    from service.tasks.client import Tasks, wait_for_task

    async with Client(url, extensions=[Tasks()]) as client:  # declares the extension on each request
        result = await client.call_tool("start-notification-stream", arguments)  # a task, waited for

    async with Client(url, extensions=[Tasks()]) as client:
        created = await client.session.call_tool("start-notification-stream", arguments, allow_claimed=True)
    ...  # disconnected; later, from anywhere
    async with Client(url, extensions=[Tasks()]) as client:
        result = await wait_for_task(client.session, created.task_id)

It speaks the extension's wire format alone (no server-side import): a host's clients can use
it against any server that implements `io.modelcontextprotocol/tasks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ErrorData, Request, RequestParams, Result, TextContent
from pydantic import Field
from typing_extensions import override

from service.tasks import EXTENSION

__all__ = ["CreatedTask", "TaskState", "Tasks", "cancel_task", "get_task", "wait_for_task"]

TERMINAL: Final = frozenset({"completed", "failed", "cancelled"})
DEFAULT_POLL_MS: Final = 1000


class CreatedTask(Result):
    """A `tools/call` answered with a task (`resultType: "task"`)."""

    result_type: Literal["task"] = Field(default="task", alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    status_message: str | None = Field(default=None, alias="statusMessage")
    created_at: str = Field(alias="createdAt")
    last_updated_at: str = Field(alias="lastUpdatedAt")
    ttl_ms: int | None = Field(alias="ttlMs")
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")


class TaskState(Result):
    """What `tasks/get` answers: the task's status and, once it has ended, its result or error."""

    task_id: str = Field(alias="taskId")
    status: str
    status_message: str | None = Field(default=None, alias="statusMessage")
    ttl_ms: int | None = Field(default=None, alias="ttlMs")
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")
    result: dict[str, Any] | None = None
    error: ErrorData | None = None


class _TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")


class _GetTask(Request[_TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"  # the extension asks for `Mcp-Name: <taskId>`, which lets a balancer route on it


class _CancelTask(Request[_TaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param = "taskId"


async def get_task(session: ClientSession, task_id: str) -> TaskState:
    return await session.send_request(_GetTask(params=_TaskParams(taskId=task_id)), TaskState)


async def cancel_task(session: ClientSession, task_id: str) -> None:
    """Ask for the task's end (acknowledged at once; `get_task` shows when it has stopped)."""
    await session.send_request(_CancelTask(params=_TaskParams(taskId=task_id)), Result)


async def wait_for_task(session: ClientSession, task_id: str, *, poll_ms: int | None = None) -> CallToolResult:
    """Poll the task (its `pollIntervalMs` apart, unless `poll_ms` says) until it ends; its tool's result.

    A task that failed raises its JSON-RPC error (`MCPError`), as the call would have; a cancelled
    one answers a tool error that says so.
    """
    while True:
        state = await get_task(session, task_id)
        if state.status in TERMINAL:
            return _outcome(state)
        await anyio.sleep((poll_ms or state.poll_interval_ms or DEFAULT_POLL_MS) / 1000)


class Tasks(ClientExtension):
    """Declares the tasks extension; a `tools/call` the server answers with a task is waited for (`wait_for_task`),
    so `Client.call_tool` returns the tool's result either way."""

    identifier = EXTENSION

    def __init__(self, *, poll_ms: int | None = None) -> None:
        """`poll_ms`: how often to look, instead of the task's `pollIntervalMs`."""
        self._poll_ms = poll_ms

    @override
    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self._resolve)]

    async def _resolve(self, created: CreatedTask, ctx: ClaimContext) -> CallToolResult:
        return await wait_for_task(ctx.session, created.task_id, poll_ms=self._poll_ms)


def _outcome(state: TaskState) -> CallToolResult:
    if state.status == "completed" and state.result is not None:
        return CallToolResult.model_validate(state.result)
    if state.status == "failed":
        raise (
            MCPError.from_error_data(state.error)
            if state.error is not None
            else MCPError(code=-32603, message=state.status_message or f"task {state.task_id} failed")
        )
    message = state.status_message or f"Task {state.task_id} was {state.status}."
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
