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

from mcp_types import CallToolResult

from service.domain.jobs import JobRecord, JobStatus, McpTask
from service.tasks import LEGACY, MODERN

__all__ = [
    "dump",
    "legacy_task",
    "modern_created",
    "modern_detailed",
    "status_of",
]


def status_of(job: JobRecord, era: str) -> str:
    """The task's status: the job's, with a tool error as the era says (2026: completed; 2025: failed)."""
    if not job.status.is_final:
        return "working"
    if job.status is JobStatus.COMPLETED:
        return "completed"
    if job.status is JobStatus.CANCELLED:
        return "cancelled"
    return "completed" if era == MODERN else "failed"  # interrupted or failed: the tool's result says so


def dump(result: CallToolResult) -> dict[str, Any]:
    """The tool's result as a task hands it out: the `CallToolResult` alone (its envelope's `resultType` is the
    answer's, not the inlined result's)."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"result_type"})


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _common(job: JobRecord, era: str) -> dict[str, Any]:
    updated = job.finished_at or job.started_at or job.created_at
    return {
        "taskId": job.id,
        "status": status_of(job, era),
        "statusMessage": job.summary(),
        "createdAt": _timestamp(job.created_at),
        "lastUpdatedAt": _timestamp(updated),
    }


def modern_created(job: JobRecord, task: McpTask) -> dict[str, Any]:
    """The `tools/call` answer that makes a task (2026): flat, `resultType: "task"`."""
    return {"resultType": "task", **_common(job, MODERN), "ttlMs": task.ttl_ms, "pollIntervalMs": task.poll_ms}


def modern_detailed(job: JobRecord, task: McpTask, result: CallToolResult | None) -> dict[str, Any]:
    """`tasks/get` (2026), and `notifications/tasks`: the task, with the tool's result once it completed."""
    detailed = {**_common(job, MODERN), "ttlMs": task.ttl_ms, "pollIntervalMs": task.poll_ms}
    if detailed["status"] == "completed" and result is not None:
        detailed["result"] = dump(result)
    return {"resultType": "complete", **detailed}


def legacy_task(job: JobRecord, task: McpTask) -> dict[str, Any]:
    """The task (2025): what `tasks/get`, `tasks/cancel` and `tasks/list` answer, and a created task's `task`."""
    return {**_common(job, LEGACY), "ttl": task.ttl_ms, "pollInterval": task.poll_ms}
