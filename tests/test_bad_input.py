"""The bad-input matrix: every kind of malformed request gets its exact status and a JSON error body,
and the service keeps serving afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import TOOL, ServiceProcess, open_raw_session, parse_sse, running_service, tool_call

INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, PARSE_ERROR = -32600, -32601, -32602, -32700


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("bad-input"), SERVICE_MAX_REQUEST_BODY="65536") as running:
        yield running


@pytest.fixture(scope="module")
def session(service: ServiceProcess) -> dict[str, str]:
    """Headers of an initialized MCP session (2025-11-25)."""
    return open_raw_session(service)


def rpc_error(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC error of a response, whether it came as a JSON body or inside an SSE stream."""
    if response.headers["content-type"].startswith("text/event-stream"):
        (event,) = [e for e in parse_sse(iter(response.text.splitlines())) if e.data]
        body = event.json()
    else:
        body = response.json()
    error: dict[str, Any] = body["error"]
    return error


def post(service: ServiceProcess, headers: dict[str, str], content: bytes | str) -> httpx.Response:
    return httpx.post(service.mcp_url, headers=headers, content=content, timeout=30)


def call(name: str, arguments: Any) -> str:
    return json.dumps(tool_call(7, arguments, name=name))


@pytest.mark.parametrize(
    ("case", "content", "status", "code"),
    [
        ("malformed JSON", b'{"jsonrpc": "2.0", "id": 1, "method":', 400, PARSE_ERROR),
        ("a JSON-RPC batch", b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', 400, INVALID_PARAMS),
        ("not JSON-RPC at all", b'{"hello": "world"}', 400, INVALID_PARAMS),
        ("an unknown method", b'{"jsonrpc": "2.0", "id": 1, "method": "jobs/explode"}', 200, METHOD_NOT_FOUND),
        ("an unknown tool", call("no-such-tool", {}), 200, INVALID_PARAMS),
        ("arguments that are not an object", call(TOOL, [1, 2, 3]), 200, INVALID_PARAMS),
    ],
)
def test_mcp_protocol_errors(
    service: ServiceProcess, session: dict[str, str], case: str, content: bytes | str, status: int, code: int
) -> None:
    response = post(service, session, content)
    assert response.status_code == status, response.text
    assert rpc_error(response)["code"] == code


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"interval": 0, "count": "5", "caller": "x"}, "count"),
        ({"interval": "NaN", "count": 1, "caller": "x"}, "interval"),
        ({"interval": -1, "count": 1, "caller": "x"}, "interval"),
        ({"interval": 0, "count": 10**12, "caller": "x"}, "SERVICE_MAX_COUNT"),
        ({"interval": 0, "count": 1, "caller": "x" * 1000}, "SERVICE_MAX_CALLER_LENGTH"),
        ({"interval": 10**6, "count": 1, "caller": "x"}, "SERVICE_MAX_INTERVAL"),
        ({"count": 1, "caller": "x"}, "interval"),
    ],
)
def test_bad_tool_arguments_are_tool_errors_naming_them(
    service: ServiceProcess, session: dict[str, str], arguments: Any, named: str
) -> None:
    response = post(service, session, call(TOOL, arguments))
    assert response.status_code == 200
    events = [e for e in parse_sse(iter(response.text.splitlines())) if e.data]
    result = events[-1].json()["result"]
    assert result["isError"] is True
    assert named in result["content"][0]["text"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_numbers_are_refused(service: ServiceProcess, session: dict[str, str], literal: str) -> None:
    body = call(TOOL, {"interval": "@", "count": 1, "caller": "x"}).replace('"@"', literal)
    response = post(service, session, body)
    if response.status_code == 400:
        assert rpc_error(response)["code"] == PARSE_ERROR
    else:
        events = [e for e in parse_sse(iter(response.text.splitlines())) if e.data]
        result = events[-1].json()["result"]
        assert result["isError"] is True
        assert "interval" in result["content"][0]["text"]


def test_http_level_errors_on_mcp(service: ServiceProcess, session: dict[str, str]) -> None:
    ping = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
    cases: list[tuple[str, dict[str, str], bytes, int]] = [
        ("wrong Content-Type", {**session, "Content-Type": "text/plain"}, ping, 400),
        ("Accept that fits neither", {**session, "Accept": "text/html"}, ping, 406),
        ("SSE not accepted", {**session, "Accept": "application/json"}, ping, 406),
        ("unknown session", {**session, "mcp-session-id": "f" * 32}, ping, 404),
        ("garbage session", {**session, "mcp-session-id": "../../etc/passwd"}, ping, 404),
        ("missing session", {k: v for k, v in session.items() if k != "mcp-session-id"}, ping, 400),
        ("foreign Host", {**session, "Host": "attacker.example"}, ping, 421),
        ("foreign Origin", {**session, "Origin": "http://attacker.example"}, ping, 403),
        (
            "oversized body",
            session,
            b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "pad": "' + b"x" * 70_000 + b'"}',
            413,
        ),
        ("10 MB caller", session, call(TOOL, {"interval": 0, "count": 1, "caller": "x" * 10_000_000}).encode(), 413),
    ]
    for case, headers, content, status in cases:
        response = httpx.post(service.mcp_url, headers=headers, content=content, timeout=30)
        assert response.status_code == status, (case, response.text)
        assert response.headers.get("content-type", "").startswith("application/json"), (case, response.headers)
        assert rpc_error(response)["message"], case


def test_a_session_that_was_deleted_is_gone(service: ServiceProcess, session: dict[str, str]) -> None:
    headers = open_raw_session(service)
    assert httpx.delete(service.mcp_url, headers=headers).status_code == 200
    response = httpx.post(service.mcp_url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 404
    assert rpc_error(response)["message"] == "Session not found"


def test_a_garbage_last_event_id_is_400(service: ServiceProcess, session: dict[str, str]) -> None:
    response = httpx.get(service.mcp_url, headers={**session, "Last-Event-ID": "'; DROP TABLE events; --"})
    assert response.status_code == 400
    assert "Cannot resume" in rpc_error(response)["message"]


def test_rest_errors(service: ServiceProcess) -> None:
    http = httpx.Client(base_url=service.base_url)
    cases: list[tuple[str, httpx.Response, int]] = [
        ("unknown job", http.get("/jobs/" + "a" * 32), 404),
        ("malformed job id", http.get("/jobs/..%2F..%2Fetc"), 404),
        ("malformed job id", http.get("/jobs/XYZ"), 422),
        ("malformed JSON", http.post("/jobs", content=b"{nope", headers={"Content-Type": "application/json"}), 422),
        ("oversized body", http.post("/jobs", json={"interval": 0, "count": 1, "caller": "x" * 100_000}), 413),
        ("bad status filter", http.get("/jobs", params={"status": "exploded"}), 422),
        ("bad Last-Event-ID", http.get("/jobs/" + "a" * 32 + "/events", headers={"Last-Event-ID": "x"}), 404),
        ("wrong method", http.put("/jobs"), 405),
        ("foreign Host", http.get("/jobs", headers={"Host": "rebound.attacker.example"}), 421),
    ]
    for case, response, status in cases:
        assert response.status_code == status, (case, response.text)
        assert response.headers.get("content-type", "").startswith("application/json"), (case, response.headers)
        assert response.json()["detail"], case


def test_the_service_still_serves_after_all_that(service: ServiceProcess) -> None:
    assert httpx.get(f"{service.base_url}/healthz").json()["status"] == "ok"
    created = httpx.post(f"{service.base_url}/jobs", json={"interval": 0, "count": 2, "caller": "still-here"})
    assert created.status_code == 202
