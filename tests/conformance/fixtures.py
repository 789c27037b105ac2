"""The reference "everything" server's fixture tools that the conformance suite's scenarios call.

They exist only for the conformance run (`tests/conformance/serve.py` adds them through
`create_app(extra_tools=...)`): the product serves `start-notification-stream` alone. Each
one does what its scenario in `@modelcontextprotocol/conformance` checks, and no more.
`test_param_header` has no counterpart there: the SEP-2243 scenario just needs some tool
with an `x-mcp-header` argument. The tasks fixtures (`greet`, `slow_compute`, `failing_job`,
`protocol_error_job`) say whether they can be tasks as a host's tools do (`execution.taskSupport`),
and the service runs them as tasks' jobs. Sampling and elicitation fixtures, and the tasks that
ask for input, are left out: the service does not ask its clients for input yet, so those
scenarios are baselined instead.
"""

from __future__ import annotations

import base64
import io
import struct
import wave
import zlib
from typing import Any, Literal

import anyio
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
    Tool,
    ToolExecution,
)

from service import McpTool, ToolHandler

NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}

# The scenarios only look for ~50 ms gaps between notifications; any short pause will do.
STEP_DELAY = 0.05

JSON_SCHEMA_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def red_pixel_png() -> str:
    """A 1x1 red PNG, base64: the smallest real image the image scenarios can decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte, then one red pixel
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def silent_wav() -> str:
    """A tenth of a second of 8 kHz mono silence as WAV, base64."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(b"\x80" * 800)
    return base64.b64encode(buffer.getvalue()).decode()


def text(message: str) -> TextContent:
    return TextContent(type="text", text=message)


def fixed(result: CallToolResult) -> ToolHandler:
    """A handler that always returns `result`."""

    async def handler(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
        return result

    return handler


async def with_logging(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    """Three info logs on the call's own stream, with pauses between them."""
    messages = ["Tool execution started", "Tool processing data", "Tool execution completed"]
    for index, message in enumerate(messages):
        if index:
            await anyio.sleep(STEP_DELAY)
        await ctx.session.send_log_message("info", message, related_request_id=ctx.request_id)
    return CallToolResult(content=[text("Tool with logging executed successfully")])


async def with_progress(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    """Progress 0, 50 and 100 of 100 (a no-op without a progressToken), with pauses between them."""
    for index, progress in enumerate((0, 50, 100)):
        if index:
            await anyio.sleep(STEP_DELAY)
        await ctx.session.report_progress(progress, 100, f"Completed step {progress} of 100")
    return CallToolResult(content=[text("Tool with progress executed successfully")])


async def logging_tool(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    """Log once. On 2026-07-28 the log must not be sent unless the request opted in to a log level."""
    await ctx.session.send_log_message("info", "test_logging_tool ran", related_request_id=ctx.request_id)
    return CallToolResult(content=[text("Logged one message")])


async def echo_region(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[text(f"Region: {arguments.get('region')}")])


async def reconnection(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    """Close this call's SSE stream mid-call (SEP-1699), so the result must reach a resumed stream.

    `close_sse_stream` is only offered when the stream is resumable (event store, 2025-11-25+).
    """
    if ctx.close_sse_stream is not None:
        await ctx.close_sse_stream()
    await anyio.sleep(0.1)
    return CallToolResult(
        content=[text("Reconnection test completed successfully: the result arrived after the stream was closed.")]
    )


async def greet(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[text(f"Hello, {arguments.get('name', 'world')}!")])


async def slow_compute(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    seconds = float(arguments.get("seconds", 0))
    await anyio.sleep(seconds)
    return CallToolResult(content=[text(f"Computed {arguments.get('label', '')} in {seconds:g} s")])


async def failing_job(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    await anyio.sleep(1)
    return CallToolResult(content=[text("The job failed, as it always does")], is_error=True)


async def protocol_error_job(ctx: ServerRequestContext[Any], arguments: dict[str, Any]) -> CallToolResult:
    await anyio.sleep(STEP_DELAY)
    raise MCPError(code=INTERNAL_ERROR, message="The job hit a protocol error, as it always does")


def tool(
    name: str,
    description: str,
    handler: ToolHandler,
    input_schema: dict[str, Any] | None = None,
    *,
    tasks: Literal["optional", "required"] | None = None,
) -> McpTool:
    """A fixture tool; `tasks`: whether it can (or must) run as a task (the service runs its handler as a job)."""
    execution = None if tasks is None else ToolExecution(task_support=tasks)
    schema = input_schema or NO_ARGUMENTS
    return McpTool(Tool(name=name, description=description, input_schema=schema, execution=execution), handler)


def fixture_tools() -> list[McpTool]:
    """Every fixture tool, in the order the suite's scenarios use them."""
    image = ImageContent(type="image", data=red_pixel_png(), mime_type="image/png")
    return [
        # Tasks (the 2026-07-28 extension): `greet` never is one, `slow_compute` may be, the other two must be.
        tool("greet", "Greets `name`", greet, {"type": "object", "properties": {"name": {"type": "string"}}}),
        tool(
            "slow_compute",
            "Sleeps `seconds`, then answers",
            slow_compute,
            {"type": "object", "properties": {"seconds": {"type": "number"}, "label": {"type": "string"}}},
            tasks="optional",
        ),
        tool("failing_job", "Ends with a tool error after a second", failing_job, tasks="required"),
        tool("protocol_error_job", "Ends with a JSON-RPC error", protocol_error_job, tasks="required"),
        tool(
            "test_simple_text",
            "Returns a simple text response",
            fixed(CallToolResult(content=[text("This is a simple text response for testing.")])),
        ),
        tool("test_image_content", "Returns a 1x1 red PNG", fixed(CallToolResult(content=[image]))),
        tool(
            "test_audio_content",
            "Returns a short silent WAV",
            fixed(CallToolResult(content=[AudioContent(type="audio", data=silent_wav(), mime_type="audio/wav")])),
        ),
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource",
            fixed(
                CallToolResult(
                    content=[
                        EmbeddedResource(
                            type="resource",
                            resource=TextResourceContents(
                                uri="test://embedded-resource",
                                mime_type="text/plain",
                                text="This is an embedded resource content.",
                            ),
                        )
                    ]
                )
            ),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, image and resource content together",
            fixed(
                CallToolResult(
                    content=[
                        text("Multiple content types test:"),
                        image,
                        EmbeddedResource(
                            type="resource",
                            resource=TextResourceContents(
                                uri="test://mixed-content-resource",
                                mime_type="application/json",
                                text='{"test":"data","value":123}',
                            ),
                        ),
                    ]
                )
            ),
        ),
        tool("test_tool_with_logging", "Sends three log notifications while it runs", with_logging),
        tool(
            "test_error_handling",
            "Always fails with a tool error",
            fixed(
                CallToolResult(content=[text("This tool intentionally returns an error for testing")], is_error=True)
            ),
        ),
        tool("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100", with_progress),
        tool("test_reconnection", "Closes its SSE stream mid-call; the result follows on resumption", reconnection),
        tool("test_logging_tool", "Logs once; on 2026-07-28 only if the request asked for logs", logging_tool),
        tool(
            "test_param_header",
            "Echoes `region`, which 2026-07-28 clients mirror into an Mcp-Param-Region header (SEP-2243)",
            echo_region,
            input_schema={
                "type": "object",
                "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
                "required": ["region"],
            },
        ),
        tool(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features",
            fixed(CallToolResult(content=[text("JSON Schema 2020-12 tool called")])),
            input_schema={
                "$schema": JSON_SCHEMA_2020_12,
                "type": "object",
                "$defs": {
                    "address": {
                        "$anchor": "addressDef",
                        "type": "object",
                        "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                    }
                },
                "properties": {
                    "name": {"type": "string"},
                    "address": {"$ref": "#/$defs/address"},
                    "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                    "phone": {"type": "string"},
                    "email": {"type": "string"},
                },
                "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                "then": {"required": ["phone"]},
                "else": {"required": ["email"]},
                "additionalProperties": False,
            },
        ),
    ]
