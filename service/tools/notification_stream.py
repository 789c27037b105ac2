"""This service's own tool, `start-notification-stream`: a job whose notifications ride the call's stream."""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server.connection import allowed_log_levels
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types import CallToolResult, TextContent, Tool, ToolExecution
from pydantic import ValidationError

from service.auth import principal_of
from service.domain.jobs import JobOrigin, JobRecord, JobSpec, JobStatus, McpCall, McpTask
from service.domain.notifications import Sink
from service.jobs.engine import JobEngine, TooManyJobs
from service.mcp.fast_transport import RequestStream
from service.stores.base import StoreError
from service.tools.base import McpTool, TaskSupport, describe_validation_error, error_result
from service.tools.sinks import RequestStreamSink, SerializedRequestStreamSink

__all__ = ["TOOL_NAME", "call_of", "notification_tool", "request_stream_sink"]

TOOL_NAME = "start-notification-stream"

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "job_id": {"type": "string"},
        "status": {"type": "string", "enum": [status.value for status in JobStatus]},
        "sent": {"type": "integer"},
        "count": {"type": "integer"},
        "caller": {"type": "string"},
    },
    "required": ["job_id", "status", "sent", "count", "caller"],
}

TOOL_DESCRIPTION = (
    "Send `count` log notifications to the caller, `interval` seconds apart, then return a summary. "
    "Every run is a job, also visible over REST at /jobs."
)


def job_result(job: JobRecord) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=job.summary())],
        structured_content={
            "job_id": job.id,
            "status": job.status.value,
            "sent": job.sent,
            "count": job.count,
            "caller": job.caller,
        },
        is_error=job.status is not JobStatus.COMPLETED,
    )


def notification_tool(engine: JobEngine, spec: type[JobSpec]) -> McpTool:
    """The tool, with `spec` (the arguments' model, with the configured limits) as its `inputSchema`."""

    async def handler(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
        return await start_notification_stream(engine, spec, ctx, arguments)

    def expected_seconds(arguments: dict[str, Any]) -> float:
        checked = spec.model_validate(arguments)
        return checked.count * checked.interval

    async def start(ctx: ServerRequestContext[Any], arguments: dict[str, Any], task: McpTask) -> JobRecord:
        # Its notifications go to its job's log alone (`/jobs/{id}/events`): the protocol sends none for a task.
        owner = principal_of(ctx.request) if ctx.request is not None else None
        return await engine.start(spec.model_validate(arguments), origin=JobOrigin.MCP, owner=owner, task=task)

    schema = spec.model_json_schema()
    schema.pop("title", None)  # the model's name, not the tool's
    definition = Tool(
        name=TOOL_NAME,
        description=TOOL_DESCRIPTION,
        input_schema=schema,
        output_schema=OUTPUT_SCHEMA,
        execution=ToolExecution(task_support="optional"),  # listed to 2025-11-25 clients (2026 has no such field)
    )
    return McpTool(definition, handler, TaskSupport(expected_seconds, start, job_result))


def request_stream_sink(ctx: ServerRequestContext[Any], call: McpCall) -> Sink:
    """Where the call's notifications go: its own stream, as text where the fast transport serves it."""
    stream = RequestStream.of(ctx.request)
    if stream is not None:
        return SerializedRequestStreamSink(
            stream, ctx.session, logs=call.logs, progress=call.progress_token is not None
        )
    return RequestStreamSink(ctx.session, call.request_id)


def call_of(ctx: ServerRequestContext[Any]) -> McpCall:
    """The call as a job records it: what another replica needs to write the rest of its stream."""
    assert ctx.request_id is not None
    logs = "info" in allowed_log_levels(ctx.protocol_version, ctx.meta)
    return McpCall(request_id=ctx.request_id, progress_token=progress_token_from_params(ctx.params), logs=logs)


async def start_notification_stream(
    engine: JobEngine, spec_model: type[JobSpec], ctx: ServerRequestContext[Any], arguments: dict[str, Any]
) -> CallToolResult:
    """Run the job to its end while its notifications ride this call's stream.

    If the client cancels the call (`notifications/cancelled`, or on the 2026-07-28
    protocol by dropping the connection), the job is cancelled with it.
    """
    try:
        spec = spec_model.model_validate(arguments)
    except ValidationError as exc:
        return error_result(describe_validation_error(exc))
    session_id = ctx.request.headers.get(MCP_SESSION_ID_HEADER) if ctx.request is not None else None
    call = call_of(ctx)
    try:
        job = await engine.run(
            spec,
            origin=JobOrigin.MCP,
            session_id=session_id,
            owner=principal_of(ctx.request) if ctx.request is not None else None,
            sinks=[request_stream_sink(ctx, call)],
            # A call on a 2025-11-25 session can be resumed, so its job can move to another replica.
            call=call if session_id is not None else None,
        )
    except TooManyJobs as exc:
        return error_result(str(exc))
    except StoreError as exc:
        return error_result(f"The job store is unavailable; try again shortly ({exc})")
    if not job.status.is_final:
        # Handed over as this replica stops: another one writes the rest of the call's stream and its result
        # (`service.tools.resumed_call`). Nothing more is written on it here; the call ends as its session closes.
        if (stream := RequestStream.of(ctx.request)) is not None:
            stream.hand_over()
        await anyio.sleep_forever()
    return job_result(job)
