"""Authentication: bearer tokens on /mcp (the SDK's middleware) and on REST (a FastAPI dependency),
and each principal sees only its own jobs and sessions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import httpx
import pytest
from mcp.server.auth.provider import AccessToken

from harness.clients import mcp_client
from harness.service import ServiceProcess, running_service
from service.auth import StaticTokenVerifier
from service.tools.notification_stream import TOOL_NAME

ALICE, BOB = "alice-secret-token", "bob-secret-token"
TOKENS = {"alice": ALICE, "bob": "sha256:" + hashlib.sha256(BOB.encode()).hexdigest()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = {"SERVICE_AUTH_TOKENS": json.dumps(TOKENS)}
    with running_service(tmp_path_factory.mktemp("auth"), **env) as running:
        yield running


@pytest.mark.anyio
async def test_the_verifier_accepts_plain_and_hashed_tokens() -> None:
    verifier = StaticTokenVerifier(TOKENS)
    alice = await verifier.verify_token(ALICE)
    bob = await verifier.verify_token(BOB)
    assert isinstance(alice, AccessToken)
    assert alice.client_id == "alice"
    assert bob is not None
    assert bob.client_id == "bob"
    assert await verifier.verify_token("sha256:" + hashlib.sha256(BOB.encode()).hexdigest()) is None
    assert await verifier.verify_token("") is None
    with pytest.raises(ValueError, match="64 hex digits"):
        StaticTokenVerifier({"eve": "sha256:abcd"})


def test_rest_needs_a_configured_token(service: ServiceProcess) -> None:
    for headers in ({}, bearer("wrong"), {"Authorization": f"Basic {ALICE}"}):
        response = httpx.get(f"{service.base_url}/jobs", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Authentication required" in response.json()["detail"]
    assert httpx.get(f"{service.base_url}/jobs", headers=bearer(ALICE)).status_code == 200
    assert httpx.get(f"{service.base_url}/jobs", headers=bearer(BOB)).status_code == 200
    # Health and docs stay open, for probes and people.
    assert httpx.get(f"{service.base_url}/healthz").status_code == 200
    assert httpx.get(f"{service.base_url}/openapi.json").status_code == 200


def test_mcp_needs_a_configured_token(service: ServiceProcess) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    for auth in ({}, bearer("wrong")):
        response = httpx.post(service.mcp_url, headers={**headers, **auth}, json=init)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"] == "invalid_token"
    assert httpx.post(service.mcp_url, headers={**headers, **bearer(ALICE)}, json=init).status_code == 200


def test_a_principal_sees_only_its_own_jobs(service: ServiceProcess) -> None:
    http = httpx.Client(base_url=service.base_url)
    job = http.post("/jobs", json={"interval": 0.05, "count": 100, "caller": "alices"}, headers=bearer(ALICE)).json()
    assert job["owner"] == "alice"
    assert http.get(f"/jobs/{job['id']}", headers=bearer(ALICE)).status_code == 200
    for method, path in [("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/events")]:
        response = http.request(method, f"/jobs/{job['id']}{path}", headers=bearer(BOB))
        assert response.status_code == 404, (method, path)
    bobs = http.get("/jobs", headers=bearer(BOB)).json()["items"]
    assert job["id"] not in {j["id"] for j in bobs}
    assert http.post(f"/jobs/{job['id']}/cancel", headers=bearer(ALICE)).json()["status"] == "cancelled"


@pytest.mark.anyio
async def test_sessions_and_tool_jobs_belong_to_their_principal(service: ServiceProcess) -> None:
    async with mcp_client(service.mcp_url, headers=bearer(ALICE)) as alice:
        result = await alice.call_tool(TOOL_NAME, {"interval": 0, "count": 2, "caller": "alice-mcp"})
        assert result.structured_content is not None
        job_id = result.structured_content["job_id"]
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            job = (await http.get(f"/jobs/{job_id}", headers=bearer(ALICE))).json()
            assert job["owner"] == "alice"
            assert (await http.get(f"/jobs/{job_id}", headers=bearer(BOB))).status_code == 404
            session_id = job["session_id"]
            # Bob can neither use Alice's session on /mcp nor push notifications into it.
            ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
            headers = {
                "Accept": "application/json, text/event-stream",
                "mcp-session-id": session_id,
                "mcp-protocol-version": "2025-11-25",
                **bearer(BOB),
            }
            assert (await http.post("/mcp", json=ping, headers=headers)).status_code == 404
            push = {"interval": 0, "count": 1, "caller": "bob", "session_id": session_id}
            assert (await http.post("/jobs", json=push, headers=bearer(BOB))).status_code == 404
            assert (await http.post("/jobs", json=push, headers=bearer(ALICE))).status_code == 202
        await anyio.lowlevel.checkpoint()


def test_start_up_warns_when_exposed_without_authentication(tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("exposed")
    with running_service(workdir, SERVICE_HOST="0.0.0.0", SERVICE_LOG_LEVEL="WARNING") as exposed:
        log = exposed.log()
    assert "no authentication is configured" in log
    assert "SERVICE_AUTH_TOKENS" in log
