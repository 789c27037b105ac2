"""/mcp as an HTTP endpoint: no redirect, DNS-rebinding protection, session lifecycle."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx

from harness.clients import INITIALIZE, MCP_HEADERS, open_raw_session, tool_call
from harness.service import ServiceProcess, running_service
from harness.sse import parse_sse
from tests.support import wait_for


def initialize(service: ServiceProcess, **headers: str) -> httpx.Response:
    return httpx.post(service.mcp_url, headers={**MCP_HEADERS, **headers}, json=INITIALIZE)


def test_mcp_is_served_without_a_redirect(service: ServiceProcess) -> None:
    response = initialize(service)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["mcp-session-id"]
    assert not response.history


def test_a_foreign_host_is_refused(service: ServiceProcess) -> None:
    assert initialize(service, Host="evil.example").status_code == 421


def test_a_foreign_origin_is_refused_and_a_local_one_accepted(service: ServiceProcess) -> None:
    assert initialize(service, Origin="http://evil.example").status_code == 403
    assert initialize(service, Origin=f"http://localhost:{service.port}").status_code == 200


def test_delete_ends_the_session(service: ServiceProcess) -> None:
    session_id = initialize(service).headers["mcp-session-id"]
    headers = {**MCP_HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"}
    assert httpx.delete(service.mcp_url, headers=headers).status_code == 200
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert httpx.post(service.mcp_url, headers=headers, json=ping).status_code == 404


def test_a_tool_call_stream_is_kept_alive_while_its_job_waits(tmp_path: Path) -> None:
    """The SSE answer to a POST: priming event, pings while idle, ids on every message, the result last."""
    with running_service(tmp_path, SERVICE_SSE_PING_INTERVAL="0.2") as service:
        session = open_raw_session(service)
        call = tool_call(7, {"count": 2, "interval": 1, "caller": "pinged"})
        with httpx.stream("POST", service.mcp_url, headers=session, json=call, timeout=10) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["mcp-session-id"] == session["mcp-session-id"]
            lines = list(response.iter_lines())
    pings = [line for line in lines if line.startswith(":")]
    events = list(parse_sse(iter(lines)))
    assert len(pings) >= 3  # a second between the two notifications, a ping every 0.2 s
    assert events[0].data == ""  # the priming event: a resumption point before anything is sent
    messages = [json.loads(event.data) for event in events[1:]]
    assert [m["params"]["data"] for m in messages[:2]] == [
        "Notification 1/2 for pinged",
        "Notification 2/2 for pinged",
    ]
    assert messages[2]["id"] == 7
    assert messages[2]["result"]["structuredContent"]["sent"] == 2
    ids = [int(event.id or 0) for event in events]
    assert ids == sorted(ids)
    assert ids[0] > 0


def test_a_2026_tool_call_stream_is_kept_alive_at_the_services_interval(tmp_path: Path) -> None:
    """The 2026-07-28 path is the SDK's, which pings every 15 s of its own: here at SERVICE_SSE_PING_INTERVAL."""
    call = tool_call(7, {"count": 2, "interval": 1, "caller": "pinged"})
    call["params"]["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {**MCP_HEADERS, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call"}
    headers["mcp-name"] = "start-notification-stream"
    with (
        running_service(tmp_path, SERVICE_SSE_PING_INTERVAL="0.2") as service,
        httpx.stream("POST", service.mcp_url, headers=headers, json=call, timeout=10) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = list(response.iter_lines())
    assert sum(line == ": ping" for line in lines) >= 3  # a second of silence (no logs asked for), 0.2 s apart
    (result,) = [json.loads(event.data) for event in parse_sse(iter(lines))]
    assert result["result"]["structuredContent"]["sent"] == 2


def test_deleting_a_session_mid_call_ends_its_stream_and_cancels_its_job(service: ServiceProcess) -> None:
    """The job's sends fail once the session is gone; the call is cancelled with it, nothing keeps running."""
    session = open_raw_session(service)
    call = tool_call(3, {"count": 100_000, "interval": 0.001, "caller": "deleted-mid-call"})
    with httpx.stream("POST", service.mcp_url, headers=session, json=call, timeout=10) as response:
        events = parse_sse(response.iter_lines())
        next(events)  # priming
        assert json.loads(next(events).data)["params"]["data"] == "Notification 1/100000 for deleted-mid-call"
        assert httpx.delete(service.mcp_url, headers=session).status_code == 200
        rest = [json.loads(event.data) for event in events]  # ends: the session closed the stream
    assert all("result" not in message for message in rest)
    assert_cancelled_midway(service, "deleted-mid-call")


def test_a_cancelled_call_ends_its_stream_with_a_cancelled_error_and_cancels_its_job(service: ServiceProcess) -> None:
    """`notifications/cancelled` on the 2025-11-25 wire: the stream ends with code -32800, the job is cancelled."""
    session = open_raw_session(service)
    call = tool_call(4, {"count": 100_000, "interval": 0.001, "caller": "cancelled-call"})
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4, "reason": "enough"}}
    with httpx.stream("POST", service.mcp_url, headers=session, json=call, timeout=10) as response:
        events = parse_sse(response.iter_lines())
        next(events)  # priming
        next(events)  # the first notification: the job is running
        assert httpx.post(service.mcp_url, headers=session, json=cancel).status_code == 202
        last = json.loads(list(events)[-1].data)
    assert last == {"jsonrpc": "2.0", "id": 4, "error": {"code": -32800, "message": "Request cancelled"}}
    assert_cancelled_midway(service, "cancelled-call")


def assert_cancelled_midway(service: ServiceProcess, caller: str) -> None:
    """The caller's one job ends (its cancellation may land just after the stream does) as cancelled, part sent."""

    def job() -> Any:
        (found,) = [job for job in httpx.get(f"{service.base_url}/jobs").json()["items"] if job["caller"] == caller]
        return found

    wait_for(lambda: job()["status"] != "running")
    final = job()
    assert final["status"] == "cancelled"
    assert 1 <= final["sent"] < final["count"]


def test_a_get_stream_whose_client_went_away_is_released(service: ServiceProcess) -> None:
    """Writes to a gone client do not fail, so the stream must notice the disconnect itself, or the session's
    one GET stream stays taken (409) and the session never idles out."""
    session = open_raw_session(service)

    def open_get() -> int:
        with httpx.stream("GET", service.mcp_url, headers=session, timeout=5) as response:
            if response.status_code == 200:
                next(parse_sse(response.iter_lines()))  # the priming event: the stream is registered
            return response.status_code

    assert open_get() == 200  # and the client hangs up
    wait_for(lambda: open_get() == 200, timeout=5)
    with httpx.stream("GET", service.mcp_url, headers=session, timeout=5) as held:
        assert held.status_code == 200
        assert httpx.get(service.mcp_url, headers=session, timeout=5).status_code == 409


def test_padded_header_values_are_read_without_their_padding(service: ServiceProcess) -> None:
    """RFC 9110: whitespace around a field value is not part of it (httptools keeps it, the SDK compares it)."""
    session_id = open_raw_session(service)["mcp-session-id"]

    def ping(session_header: str) -> bytes:
        body = b'{"jsonrpc": "2.0", "id": 9, "method": "ping"}'
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMcp-Session-Id:{session_header}\r\n"
            f"MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
            sock.sendall(head.encode() + body)
            return b"".join(iter(lambda: sock.recv(65536), b""))

    assert ping(f" {session_id}").startswith(b"HTTP/1.1 200")
    assert ping(f" {session_id} \t").startswith(b"HTTP/1.1 200")
    assert ping(f" {session_id}x").startswith(b"HTTP/1.1 404")
