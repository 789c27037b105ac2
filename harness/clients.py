"""MCP clients as the tests and benchmarks drive them: the Python SDK's, raw requests, the TypeScript SDK's."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, LoggingMessageNotificationParams

from harness.service import REPO, Endpoint, ServiceProcess
from service.tools.notification_stream import TOOL_NAME

__all__ = [
    "INITIALIZE",
    "MCP_HEADERS",
    "NODE_DIR",
    "Received",
    "ensure_node_client",
    "mcp_client",
    "open_raw_session",
    "run_node_client",
    "stopped_during_a_call",
    "tool_call",
]

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
NODE_DIR = REPO / "tests" / "node"
SETTLE = 2.0
"""Seconds `Received.settled` waits for notifications a call's response overtook."""


@dataclass
class Received:
    """What an MCP client was sent besides results: log messages and progress values, in order."""

    logs: list[Any] = field(default_factory=list)
    progress: list[float] = field(default_factory=list)
    after_log: Callable[[int], None] | None = None
    """Called with the number of log messages so far, after each one (fault tests cut the line here)."""

    async def on_log(self, params: LoggingMessageNotificationParams) -> None:
        self.logs.append(params.data)
        if self.after_log is not None:
            self.after_log(len(self.logs))

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append(progress)

    async def settled(self, count: int) -> list[Any]:
        """The log messages, once `count` have come or `SETTLE` seconds have passed. The SDK's client hands each
        notification to its callback in a task of its own, while a response resolves its call at once: a call can
        return before the callbacks of its last notifications have run. A lost one still never comes."""
        with anyio.move_on_after(SETTLE):
            while len(self.logs) < count:
                await anyio.sleep(0.01)
        return self.logs


@asynccontextmanager
async def mcp_client(
    url: str, *, mode: str = "legacy", headers: Mapping[str, str] | None = None, received: Received | None = None
) -> AsyncIterator[Client]:
    """The Python SDK's own client. `legacy` speaks 2025-11-25; `auto` lands on 2026-07-28."""
    received = received if received is not None else Received()
    async with httpx2.AsyncClient(headers=dict(headers or {}), timeout=httpx2.Timeout(30, read=60)) as http:
        client = Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            logging_callback=received.on_log,
            log_level="info",
        )
        async with client:
            yield client


def tool_call(request_id: int, arguments: Any, *, name: str = TOOL_NAME) -> dict[str, Any]:
    """A `tools/call` request as a client sends it (arguments as given, valid or not)."""
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def open_raw_session(service: Endpoint, **headers: str) -> dict[str, str]:
    """Initialize a 2025-11-25 session by hand; return the headers that address it."""
    response = httpx.post(service.mcp_url, headers={**MCP_HEADERS, **headers}, json=INITIALIZE)
    session = {
        **MCP_HEADERS,
        **headers,
        "mcp-session-id": response.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    httpx.post(service.mcp_url, headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return session


def ensure_node_client() -> str | None:
    """Install the TypeScript client's packages on first use; return why it cannot run, or None."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed"
    if not (NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        install = subprocess.run(
            ["npm", "install", "--no-package-lock", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if install.returncode != 0:
            return f"npm install failed in {NODE_DIR}: {install.stderr[-2000:]}"
    return None


def run_node_client(config: Mapping[str, Any], timeout: float = 90) -> dict[str, Any]:
    """Run the TypeScript SDK client (tests/node/client.mjs) and return what it printed."""
    proc = subprocess.run(
        ["node", str(NODE_DIR / "client.mjs"), json.dumps(config)],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    lines = proc.stdout.decode().strip().splitlines()
    if not lines:
        raise AssertionError(f"node client printed nothing (exit {proc.returncode}): {proc.stderr.decode()}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def stopped_during_a_call(
    process: ServiceProcess, service: Endpoint, *, caller: str, headers: Mapping[str, str] | None = None
) -> tuple[CallToolResult, float]:
    """Start a long tool call, SIGTERM `process` once its job runs: the call's result, and how long the stop took."""
    results: list[CallToolResult] = []
    async with mcp_client(service.mcp_url, headers=headers) as client, anyio.create_task_group() as tg:

        async def call() -> None:
            results.append(await client.call_tool(TOOL_NAME, {"interval": 0.02, "count": 10_000, "caller": caller}))

        tg.start_soon(call)
        async with httpx.AsyncClient(base_url=service.base_url, headers=dict(headers or {})) as http:
            with anyio.fail_after(10):
                while not (await http.get("/jobs", params={"status": "running"})).json()["items"]:
                    await anyio.sleep(0.02)
        began = time.monotonic()
        await anyio.to_thread.run_sync(process.stop)
        stopped = time.monotonic() - began
    (result,) = results
    return result, stopped
