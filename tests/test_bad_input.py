"""The bad-input matrix: every kind of malformed request gets its exact status and a JSON error body,
and the service keeps serving afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.clients import open_raw_session, tool_call
from harness.service import ServiceProcess, running_service
from harness.sse import parse_sse
from service.tools.notification_stream import TOOL_NAME

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
        ("arguments that are not an object", call(TOOL_NAME, [1, 2, 3]), 200, INVALID_PARAMS),
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
    response = post(service, session, call(TOOL_NAME, arguments))
    assert response.status_code == 200
    events = [e for e in parse_sse(iter(response.text.splitlines())) if e.data]
    result = events[-1].json()["result"]
    assert result["isError"] is True
    assert named in result["content"][0]["text"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_numbers_are_refused(service: ServiceProcess, session: dict[str, str], literal: str) -> None:
    body = call(TOOL_NAME, {"interval": "@", "count": 1, "caller": "x"}).replace('"@"', literal)
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
        (
            "10 MB caller",
            session,
            call(TOOL_NAME, {"interval": 0, "count": 1, "caller": "x" * 10_000_000}).encode(),
            413,
        ),
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
        ("malformed Last-Event-ID", http.get("/jobs/" + "a" * 32 + "/events", headers={"Last-Event-ID": "x"}), 422),
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


def jobs_started_by(service: ServiceProcess, caller: str) -> int:
    items = httpx.get(f"{service.base_url}/jobs", params={"limit": 500}).json()["items"]
    return sum(1 for job in items if job["caller"] == caller)


@pytest.mark.parametrize("request_id", ["1.5", "true", "false", "null", "{}", "[1]"])
def test_a_request_id_that_is_neither_string_nor_integer_is_invalid_request(
    service: ServiceProcess, session: dict[str, str], request_id: str
) -> None:
    """The SDK took these for notifications: 202, no answer, and a client waiting forever."""
    caller = f"bad-id-{request_id}"
    body = call(TOOL_NAME, {"interval": 0, "count": 1, "caller": caller}).replace('"id": 7', f'"id": {request_id}')
    response = post(service, session, body)
    assert response.status_code == 400, response.text
    error = rpc_error(response)
    assert error["code"] == INVALID_REQUEST
    assert "id must be a string or an integer" in error["message"]
    assert jobs_started_by(service, caller) == 0


@pytest.mark.parametrize(
    ("caller", "named"),
    [("a\x00b", "U+0000"), ("\x1b[2Jwiped", "U+001B"), ("two\r\nlines", "U+000D"), ("   ", "blank")],
)
def test_a_caller_with_control_characters_or_blank_is_refused_on_both_sides(
    service: ServiceProcess, session: dict[str, str], caller: str, named: str
) -> None:
    response = post(service, session, call(TOOL_NAME, {"interval": 0, "count": 1, "caller": caller}))
    result = [e for e in parse_sse(iter(response.text.splitlines())) if e.data][-1].json()["result"]
    assert result["isError"] is True
    assert "caller" in result["content"][0]["text"]
    assert named in result["content"][0]["text"]
    rest = httpx.post(f"{service.base_url}/jobs", json={"interval": 0, "count": 1, "caller": caller})
    assert rest.status_code == 422
    (error,) = rest.json()["detail"]
    assert (error["loc"], named in error["msg"]) == (["body", "caller"], True)
    assert jobs_started_by(service, caller) == 0


def json_post(service: ServiceProcess, path: str, content: bytes) -> httpx.Response:
    return httpx.post(f"{service.base_url}{path}", content=content, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "body",
    [
        b'{"interval": NaN, "count": 1, "caller": "x"}',
        b'{"interval": Infinity, "count": 1, "caller": "x"}',
        b'{"interval": -Infinity, "count": 1, "caller": "x"}',
        b'{"interval": 1e309, "count": 1, "caller": "x"}',
        b'{"interval": 0, "count": 1e309, "caller": "x"}',
        b'{"interval": 0, "count": 1, "caller": "x", "extra": NaN}',
        b'{"interval": 0, "count": 1, "caller": "a\\ud800b"}',
        b'{"interval": 0, "count": 1, "caller": "x", "\\udfff": 1}',
    ],
)
def test_rest_bodies_json_cannot_echo_are_a_422_not_a_500(service: ServiceProcess, body: bytes) -> None:
    """FastAPI's 422 echoes the input, and NaN or a lone surrogate made that echo itself fail (500)."""
    response = json_post(service, "/jobs", body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    assert all(error["msg"] and error["loc"] for error in response.json()["detail"])


def test_rest_input_past_the_edges_is_a_clear_4xx(service: ServiceProcess) -> None:
    http = httpx.Client(base_url=service.base_url)
    cases: list[tuple[str, httpx.Response, int, str]] = [
        ("offset past SQLite's integers", http.get("/jobs", params={"offset": 2**63}), 422, "offset"),
        ("negative limit", http.get("/jobs", params={"limit": -1}), 422, "limit"),
        ("a body that is not UTF-8", json_post(service, "/jobs", b"\xff\xfe{"), 400, "parsing the body"),
        ("a 2 MB header", http.get("/jobs", headers={"X-Pad": "x" * 2_000_000}), 431, "SERVICE_MAX_HEADER_BYTES"),
        (
            "a session id that is not visible ASCII",
            http.post("/jobs", json={"interval": 0, "count": 1, "caller": "x", "session_id": "a b"}),
            422,
            "session_id",
        ),
    ]
    for case, response, status, named in cases:
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == "application/json", case
        assert named in response.text, case


def test_a_2_mb_header_on_mcp_is_431_as_json_rpc(service: ServiceProcess, session: dict[str, str]) -> None:
    response = post(service, {**session, "X-Pad": "x" * 2_000_000}, b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}')
    assert response.status_code == 431
    assert "SERVICE_MAX_HEADER_BYTES" in rpc_error(response)["message"]


def test_allow_lists_every_method_of_the_path_and_probes_may_use_head(service: ServiceProcess) -> None:
    http = httpx.Client(base_url=service.base_url)
    for path, allowed in [("/jobs", "GET, POST"), ("/jobs/" + "a" * 32, "DELETE, GET"), ("/healthz", "GET, HEAD")]:
        response = http.options(path)
        assert (response.status_code, response.headers["allow"]) == (405, allowed), path
        assert response.json()["detail"] == "Method Not Allowed"
    head = http.head("/healthz")
    assert (head.status_code, head.content) == (200, b"")
