"""/mcp as an HTTP endpoint: no redirect, DNS-rebinding protection, session lifecycle."""

from __future__ import annotations

import httpx

from tests.support import INITIALIZE, MCP_HEADERS, ServiceProcess


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
