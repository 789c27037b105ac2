"""Misbehaving clients and shutdowns: nothing leaks, nobody blocks anybody, nothing is lost."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

from harness.clients import INITIALIZE, MCP_HEADERS, mcp_client, tool_call
from harness.service import ServiceProcess, running_service
from service.tools.notification_stream import TOOL_NAME
from tests.support import wait_for


async def open_session(http: httpx.AsyncClient) -> str:
    response = await http.post("/mcp", headers=MCP_HEADERS, json=INITIALIZE)
    session_id = response.headers["mcp-session-id"]
    headers = {**MCP_HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"}
    await http.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return session_id


def raw_tool_call(port: int, session_id: str, arguments: dict[str, Any]) -> bytes:
    body = json.dumps(tool_call(1, arguments)).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session_id}\r\n"
        f"MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def vanish_mid_stream(port: int, session_id: str) -> None:
    """Start a tool call, read until the first notification, then drop the connection."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    await stream.send(raw_tool_call(port, session_id, {"interval": 0.05, "count": 20, "caller": "vanishing"}))
    received = b""
    while b"notifications/message" not in received:
        try:
            received += await stream.receive()
        except anyio.EndOfStream:
            raise AssertionError(f"the server closed the stream early: {received!r}") from None
    await stream.aclose()


async def vanishing_clients(service: ServiceProcess, count: int) -> None:
    """`count` clients, 100 at a time: each opens a session, starts a call and drops it mid-stream."""
    limiter = anyio.CapacityLimiter(100)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)  # no stale keep-alive races
    async with httpx.AsyncClient(base_url=service.base_url, limits=limits, timeout=60) as http:

        async def client() -> None:
            async with limiter:
                await vanish_mid_stream(service.port, await open_session(http))

        with anyio.fail_after(180):
            async with anyio.create_task_group() as tg:
                for _ in range(count):
                    tg.start_soon(client)


def health(service: ServiceProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{service.base_url}/healthz").json()
    return body


@pytest.mark.anyio
async def test_a_thousand_clients_that_vanish_mid_stream_leave_nothing_behind(tmp_path: Path) -> None:
    with running_service(tmp_path, SERVICE_SESSION_IDLE_TIMEOUT="20") as service:
        process = psutil.Process(service.proc.pid if service.proc else 0)
        baseline = health(service)
        rss: list[int] = []
        for _ in range(2):  # twice: a leak grows from one round to the next
            await vanishing_clients(service, 1000)
            # Their jobs run to the end (a resumable client could still come back), then the
            # idle sessions are reaped.
            await anyio.to_thread.run_sync(
                lambda: wait_for(lambda: health(service)["sessions"] == 0 and not health(service)["running_jobs"], 60)
            )
            rss.append(process.memory_info().rss)
        after = health(service)
        assert after["tasks"] <= baseline["tasks"] + 2, (baseline, after)
        jobs = httpx.get(f"{service.base_url}/jobs", params={"status": "completed", "limit": 1}).json()["items"]
        assert jobs[0]["sent"] == 20
        assert rss[1] - rss[0] < 30 * 2**20, f"RSS grew by {(rss[1] - rss[0]) / 2**20:.1f} MiB in the second round"


@pytest.mark.anyio
async def test_a_client_that_never_reads_blocks_nobody_and_stays_bounded(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        process = psutil.Process(service.proc.pid if service.proc else 0)
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            session_id = await open_session(http)
        stuck = socket.create_connection(("127.0.0.1", service.port))
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(raw_tool_call(service.port, session_id, {"interval": 0, "count": 100_000, "caller": "deaf"}))
        try:
            await anyio.sleep(1)
            before = process.memory_info().rss
            async with mcp_client(service.mcp_url) as client:
                with anyio.fail_after(20):
                    result = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 200, "caller": "meanwhile"})
            assert result.structured_content is not None
            assert result.structured_content["sent"] == 200
            await anyio.sleep(2)
            grown = process.memory_info().rss - before
            assert grown < 30 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB while a client did not read"
            deaf = httpx.get(f"{service.base_url}/jobs", params={"status": "running"}).json()["items"]
            assert [job["caller"] for job in deaf] == ["deaf"]
            assert deaf[0]["sent"] < 100_000  # held back by the client, not buffered without end
            assert httpx.post(f"{service.base_url}/jobs/{deaf[0]['id']}/cancel").json()["status"] == "cancelled"
        finally:
            stuck.close()


def test_sigterm_with_a_hundred_jobs_running_records_every_one(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, {}).start()
    http = httpx.Client(base_url=service.base_url)
    ids = [
        http.post("/jobs", json={"interval": 0.05, "count": 10_000, "caller": f"job-{i}"}).json()["id"]
        for i in range(100)
    ]
    wait_for(lambda: http.get("/healthz").json()["running_jobs"] == 100)
    began = time.monotonic()
    assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert time.monotonic() - began < 5
    with running_service(tmp_path) as restarted:
        jobs = httpx.get(f"{restarted.base_url}/jobs", params={"limit": 200}).json()["items"]
    statuses = {job["id"]: job["status"] for job in jobs}
    assert {statuses[job_id] for job_id in ids} == {"interrupted"}  # the README: SIGTERM records them interrupted


def test_an_unwritable_database_path_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a folder should be")
    result = subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SERVICE_SQLITE_PATH": str(blocker / "service.db")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot open the SQLite store" in result.stderr
    assert str(blocker) in result.stderr
    assert "Traceback" not in result.stderr


def test_cors_lets_a_browser_client_in(tmp_path: Path) -> None:
    origin = "http://app.example"
    with running_service(tmp_path, SERVICE_CORS_ORIGINS=json.dumps([origin])) as service:
        preflight = httpx.options(
            service.mcp_url,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, last-event-id, mcp-protocol-version",
            },
        )
        assert preflight.status_code == 200
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "last-event-id", "mcp-protocol-version"} <= {h.strip() for h in allowed.split(",")}
        response = httpx.post(service.mcp_url, headers={**MCP_HEADERS, "Origin": origin}, json=INITIALIZE)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
        assert "mcp-session-id" in response.headers["access-control-expose-headers"].lower()
        other = httpx.post(
            service.mcp_url, headers={**MCP_HEADERS, "Origin": "http://elsewhere.example"}, json=INITIALIZE
        )
        assert other.status_code == 403


def test_session_limits(tmp_path: Path) -> None:
    with running_service(tmp_path, SERVICE_MAX_SESSIONS="2", SERVICE_SESSION_IDLE_TIMEOUT="1") as service:
        first = httpx.post(service.mcp_url, headers=MCP_HEADERS, json=INITIALIZE)
        assert httpx.post(service.mcp_url, headers=MCP_HEADERS, json=INITIALIZE).status_code == 200
        full = httpx.post(service.mcp_url, headers=MCP_HEADERS, json=INITIALIZE)
        assert full.status_code == 503
        assert full.json()["error"]["message"] == "Too many open sessions"
        time.sleep(1.5)  # both sessions idle past the timeout: reaped
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {
            **MCP_HEADERS,
            "mcp-session-id": first.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-11-25",
        }
        assert httpx.post(service.mcp_url, headers=headers, json=ping).status_code == 404
        assert httpx.post(service.mcp_url, headers=MCP_HEADERS, json=INITIALIZE).status_code == 200
