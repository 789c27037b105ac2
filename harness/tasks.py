"""MCP tasks driven by hand, in both eras: a request's answer (its HTTP status and JSON-RPC message) as sent."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from harness.clients import MCP_HEADERS
from harness.service import Endpoint
from harness.sse import parse_sse
from service.tasks import EXTENSION, MODERN

__all__ = ["Answer", "modern", "rpc", "wait_for_status"]

Answer = tuple[int, dict[str, Any]]
"""The HTTP status and the JSON-RPC response (the last message of an SSE answer)."""


def rpc(
    service: Endpoint, headers: Mapping[str, str], method: str, params: dict[str, Any], request_id: int = 1
) -> Answer:
    """One request on whatever `headers` address (a 2025 session's, or a 2026 request's own)."""
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    response = httpx.post(service.mcp_url, headers=dict(headers), json=body, timeout=30)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        messages = [json.loads(event.data) for event in parse_sse(iter(response.text.splitlines())) if event.data]
        return response.status_code, messages[-1]
    return response.status_code, response.json()


def modern(
    service: Endpoint,
    method: str,
    params: dict[str, Any],
    *,
    declared: bool = True,
    name: str | None = None,
    auth: str | None = None,
) -> Answer:
    """A 2026-07-28 request, with the tasks extension declared in its `_meta` unless `declared` is False, and
    `Mcp-Name` set to `name` (by default the `taskId` of a `tasks/*` request, the tool's name of a call)."""
    capabilities: dict[str, Any] = {"extensions": {EXTENSION: {}}} if declared else {}
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    }
    headers = {**MCP_HEADERS, "mcp-protocol-version": MODERN, "mcp-method": method}
    if name is None:
        name = params.get("taskId") or params.get("name")
    if name is not None:
        headers["mcp-name"] = name
    if auth is not None:
        headers["authorization"] = f"Bearer {auth}"
    return rpc(service, headers, method, {**params, "_meta": meta})


def wait_for_status(service: Endpoint, task_id: str, wanted: set[str], timeout: float = 20, **options: Any) -> Answer:
    """Poll `tasks/get` (2026) until the task's status is one of `wanted`."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer = modern(service, "tasks/get", {"taskId": task_id}, **options)
        if "result" in answer and answer["result"]["status"] in wanted:
            return status, answer
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} is not {wanted} after {timeout} s: {answer}")
        time.sleep(0.05)
