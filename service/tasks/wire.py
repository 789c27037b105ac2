"""A task as each protocol era shows it: the job's record, in the names and shapes the client's protocol uses.

One record serves both eras, and only the shapes differ: 2026-07-28 (the extension
`io.modelcontextprotocol/tasks`) has flat results with `ttlMs` and the result inlined in
`tasks/get`; 2025-11-25 (experimental core tasks) nests the created task, says `ttl`, and hands
the result out through `tasks/result`. The two also disagree on a tool error: 2026 completes the
task with the `isError` result, 2025 marks it `failed`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp_types import INTERNAL_ERROR, CallToolResult

from service.domain.jobs import JobRecord, JobStatus, McpTask
from service.tasks import LEGACY, MODERN

__all__ = [
    "dump",
    "error_of",
    "legacy_task",
    "modern_created",
    "modern_detailed",
    "status_of",
]


def error_of(job: JobRecord, task: McpTask) -> dict[str, Any] | None:
    """The JSON-RPC error the task failed with: its tool's own, or, for a tool that cannot move, its job's end
    before the tool answered (its replica stopped or died, its store failed). None for any other end."""
    if job.outcome is not None and "error" in job.outcome:
        return dict(job.outcome["error"])
    if task.resumable or job.outcome is not None or job.status not in (JobStatus.INTERRUPTED, JobStatus.FAILED):
        return None
    reason = "its replica stopped" if job.status is JobStatus.INTERRUPTED else (job.error or "it failed")
    return {"code": INTERNAL_ERROR, "message": f"The task ended before its tool answered: {reason}"}


def status_of(job: JobRecord, task: McpTask, era: str, result: CallToolResult | None) -> str:
    """The task's status: the job's, where a JSON-RPC error fails it, and a tool error (`result.isError`) completes
    it in 2026 but fails it in 2025."""
    if not job.status.is_final:
        return "working"
    if job.status is JobStatus.CANCELLED:
        return "cancelled"
    if error_of(job, task) is not None:
        return "failed"
    if era == LEGACY and (result is None or result.is_error):
        return "failed"
    return "completed"


def dump(result: CallToolResult) -> dict[str, Any]:
    """The tool's result as a task hands it out: the `CallToolResult` alone (its envelope's `resultType` is the
    answer's, not the inlined result's)."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"result_type"})


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _common(job: JobRecord, task: McpTask, era: str, result: CallToolResult | None) -> dict[str, Any]:
    status = status_of(job, task, era, result)
    error = error_of(job, task)
    if task.resumable:
        message = job.summary()  # this service's tool: the notifications sent so far
    elif error is not None:
        message = str(error.get("message", ""))
    else:
        message = f"The task is {status}."
    return {
        "taskId": job.id,
        "status": status,
        "statusMessage": message,
        "createdAt": _timestamp(job.created_at),
        "lastUpdatedAt": _timestamp(job.finished_at or job.started_at or job.created_at),
    }


def modern_created(job: JobRecord, task: McpTask) -> dict[str, Any]:
    """The `tools/call` answer that makes a task (2026): flat, `resultType: "task"`."""
    created = _common(job, task, MODERN, None)
    return {"resultType": "task", **created, "ttlMs": task.ttl_ms, "pollIntervalMs": task.poll_ms}


def modern_detailed(job: JobRecord, task: McpTask, result: CallToolResult | None) -> dict[str, Any]:
    """`tasks/get` (2026): the task, with the tool's result once it completed, or the error it failed with."""
    detailed = {**_common(job, task, MODERN, result), "ttlMs": task.ttl_ms, "pollIntervalMs": task.poll_ms}
    if detailed["status"] == "completed" and result is not None:
        detailed["result"] = dump(result)
    elif (error := error_of(job, task)) is not None:
        detailed["error"] = error
    return {"resultType": "complete", **detailed}


def legacy_task(job: JobRecord, task: McpTask, result: CallToolResult | None) -> dict[str, Any]:
    """The task (2025): what `tasks/get`, `tasks/cancel` and `tasks/list` answer, and a created task's `task`."""
    return {**_common(job, task, LEGACY, result), "ttl": task.ttl_ms, "pollInterval": task.poll_ms}
