"""The MCP server in process, through the SDK's in-memory client: the tool's logic without HTTP."""

from __future__ import annotations

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, TextContent

from harness.clients import Received
from service import __version__
from service.domain.jobs import JobOrigin, JobSpec, JobStatus, SpecLimits, spec_model
from service.jobs.engine import JobEngine, JobLimits
from service.stores.base import Retention
from service.stores.memory import MemoryStorage
from service.tools.notification_stream import TOOL_NAME
from service.tools.server import build_server
from tests.in_process import mcp_server

pytestmark = [pytest.mark.anyio, pytest.mark.in_process]


def text(result: object) -> str:
    content = getattr(result, "content", [None])[0]
    assert isinstance(content, TextContent)
    return content.text


async def test_the_tool_is_listed_with_the_configured_limits() -> None:
    limits = SpecLimits(max_count=50, min_interval=0.1, max_interval=2, max_caller_length=12)
    async with mcp_server(limits=limits) as (client, _):
        (tool,) = (await client.list_tools()).tools
    properties = tool.input_schema["properties"]
    assert tool.name == TOOL_NAME
    assert (properties["count"]["maximum"], properties["interval"]["maximum"]) == (50, 2)
    assert (properties["interval"]["minimum"], properties["caller"]["maxLength"]) == (0.1, 12)


async def test_a_call_sends_its_notifications_and_returns_its_job() -> None:
    received = Received()
    async with mcp_server(received=received) as (client, engine):
        result = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 3, "caller": "inproc"})
        assert result.structured_content is not None
        job = await engine.get(result.structured_content["job_id"])
    assert not result.is_error
    assert received.logs == [f"Notification {i}/3 for inproc" for i in range(1, 4)]
    assert job is not None
    assert (job.status, job.sent, job.origin, job.runner) == (JobStatus.COMPLETED, 3, JobOrigin.MCP, engine.runner_id)
    assert text(result) == f"Sent 3 notifications to inproc, 0s apart (job {job.id})."


async def test_bad_arguments_are_a_tool_error_naming_the_setting() -> None:
    limits = SpecLimits(max_count=5, min_interval=0, max_interval=1, max_caller_length=8)
    async with mcp_server(limits=limits) as (client, _):
        result = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 6, "caller": "x"})
        missing = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 1})
    assert result.is_error
    assert text(result) == "Invalid arguments: count: must be at most 5 (SERVICE_MAX_COUNT)"
    assert missing.is_error
    assert text(missing) == "Invalid arguments: caller: Field required"


async def test_an_unknown_tool_is_invalid_params() -> None:
    async with mcp_server() as (client, _):
        with pytest.raises(MCPError) as raised:
            await client.call_tool("no-such-tool", {})
    assert raised.value.error.code == INVALID_PARAMS
    assert "no-such-tool" in raised.value.error.message


async def test_a_full_engine_refuses_the_call_with_a_tool_error() -> None:
    async with mcp_server(job_limits=JobLimits(max_jobs=1, max_jobs_per_session=1)) as (client, engine):
        busy = await engine.start(JobSpec(interval=60, count=2, caller="busy"), origin=JobOrigin.REST)
        result = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 1, "caller": "late"})
        await engine.cancel(busy.id)
    assert result.is_error
    assert "SERVICE_MAX_JOBS" in text(result)


async def test_cancelling_the_job_ends_the_call_with_a_cancelled_result() -> None:
    async with mcp_server() as (client, engine), anyio.create_task_group() as tg:

        async def cancel_when_running() -> None:
            while not (jobs := await engine.list_jobs(status=JobStatus.RUNNING)):
                await anyio.sleep(0.01)
            await engine.cancel(jobs[0].id)

        tg.start_soon(cancel_when_running)
        result = await client.call_tool(TOOL_NAME, {"interval": 0.05, "count": 100, "caller": "stop"})
    assert result.is_error
    assert result.structured_content is not None
    assert result.structured_content["status"] == "cancelled"


@pytest.mark.parametrize("traced", [True, False])
def test_the_sdks_span_middleware_runs_only_when_traced(traced: bool) -> None:
    engine = JobEngine(
        MemoryStorage(max_events_per_partition=10, retention=Retention()),
        JobLimits(max_jobs=1, max_jobs_per_session=1),
    )
    limits = SpecLimits(max_count=1, min_interval=0, max_interval=1, max_caller_length=10)
    server = build_server(engine, spec=spec_model(limits), version=__version__, traced=traced)
    assert ("OpenTelemetryMiddleware" in [type(each).__name__ for each in server.middleware]) is traced
