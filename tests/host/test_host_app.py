"""The service inside a host's own FastAPI app (`tests/host/app.py`), built from the public names only and
run by plain `uvicorn`: both protocol eras under the prefix, resumption there, the host's authentication,
the host's OpenAPI, guards on the service's paths only, and SIGTERM mid-call.

The dashboard under the prefix, in Chromium, is in `tests/pages/test_dashboard.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.clients import Received, mcp_client, open_raw_session, stopped_during_a_call, tool_call
from harness.host import CORE_APP, PREFIX, HostEndpoint, host_process, running_host_app
from harness.service import Endpoint, ServiceProcess
from harness.sse import parse_sse
from harness.tasks import modern, rpc, wait_for_status
from service.tools.notification_stream import TOOL_NAME

ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_host_app(tmp_path_factory.mktemp("host")) as process:
        yield process


@pytest.fixture
def service(host: ServiceProcess) -> HostEndpoint:
    return HostEndpoint(host)


def test_the_hosts_own_routes_and_lifespan_run_beside_the_service(host: ServiceProcess) -> None:
    me = httpx.get(f"{host.base_url}/users/me", headers=ALICE)
    assert me.json() == {"name": "alice", "started": "host"}
    assert "x-request-id" not in me.headers  # the service's middleware stays on its own paths
    assert httpx.get(f"{host.base_url}/dashboard").status_code == 404  # nothing of the service at the root
    assert httpx.get(f"{host.base_url}/mcp").status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["2025-11-25", "2026-07-28"])
async def test_a_tool_call_at_the_prefix_streams_its_notifications(service: HostEndpoint, mode: str) -> None:
    received = Received()
    async with mcp_client(service.mcp_url, mode=mode, headers=ALICE, received=received) as client:
        result = await client.call_tool(TOOL_NAME, {"interval": 0.01, "count": 3, "caller": mode})
    assert not result.is_error, result
    assert result.structured_content is not None
    assert result.structured_content["sent"] == 3
    assert [message for message in received.logs if mode in message] == [
        f"Notification {index}/3 for {mode}" for index in (1, 2, 3)
    ]
    job = httpx.get(f"{service.base_url}/jobs/{result.structured_content['job_id']}", headers=ALICE).json()
    assert (job["owner"], job["status"], job["origin"]) == ("alice", "completed", "mcp")


def test_the_mcp_endpoint_answers_at_the_prefix_without_a_redirect(service: HostEndpoint) -> None:
    session = open_raw_session(service, **ALICE)
    assert session["mcp-session-id"]
    bare = httpx.post(service.mcp_url, headers=ALICE, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert bare.status_code != 307
    assert bare.status_code == 400  # a 2025 request without its session: the SDK's answer, as JSON-RPC
    assert bare.json()["error"]["message"]


def cut_and_resume(service: Endpoint, session: dict[str, str], call: dict[str, Any], cut: int) -> list[Any]:
    """Send `call`, drop the connection after `cut` messages, resume with `Last-Event-ID`: every message, in order."""
    before = []
    with httpx.stream("POST", service.mcp_url, headers=session, json=call) as response:
        assert response.status_code == 200
        for event in parse_sse(response.iter_lines()):
            if event.data:
                before.append(event)
            if len(before) == cut:
                break  # the connection drops with the call running
    after = []
    headers = {**session, "Last-Event-ID": before[-1].id or ""}
    with httpx.stream("GET", service.mcp_url, headers=headers, timeout=10) as resumed:
        assert resumed.status_code == 200
        for event in parse_sse(resumed.iter_lines()):
            if event.data:
                after.append(event.json())
            if after and "result" in after[-1]:
                break
    return [event.json() for event in before] + after


def test_a_dropped_call_resumes_at_the_prefix(service: HostEndpoint) -> None:
    session = open_raw_session(service, **ALICE)
    messages = cut_and_resume(service, session, tool_call(7, {"interval": 0.1, "count": 10, "caller": "cut"}), cut=3)
    assert [message["params"]["data"] for message in messages[:-1]] == [
        f"Notification {i}/10 for cut" for i in range(1, 11)
    ]
    assert messages[-1]["id"] == 7
    assert messages[-1]["result"]["structuredContent"]["sent"] == 10


def test_the_resumable_core_alone_serves_a_hosts_own_server(tmp_path: Path) -> None:
    """`tests/host/core_app.py`, the README's second example: the host's `Server`, our `SessionManager`."""
    with running_host_app(tmp_path, app=CORE_APP) as core:
        service = HostEndpoint(core, prefix="")
        session = open_raw_session(service)
        messages = cut_and_resume(
            service, session, tool_call(3, {"count": 8, "interval": 0.1}, name="countdown"), cut=2
        )
    assert [message["params"]["data"] for message in messages[:-1]] == [f"{i} of 8" for i in range(1, 9)]
    assert messages[-1]["result"]["content"][0]["text"] == "counted 8"


def test_the_hosts_authentication_decides_who_calls(service: HostEndpoint) -> None:
    for response in (
        httpx.post(service.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        httpx.get(f"{service.base_url}/jobs"),
        httpx.get(f"{service.base_url}/jobs", headers={"Authorization": "Bearer nobody"}),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"].startswith("application/json")
    job = httpx.post(
        f"{service.base_url}/jobs", headers=ALICE, json={"interval": 0.01, "count": 2, "caller": "owned"}
    ).json()
    assert job["owner"] == "alice"
    assert httpx.get(f"{service.base_url}/jobs/{job['id']}", headers=BOB).status_code == 404
    assert job["id"] not in {item["id"] for item in httpx.get(f"{service.base_url}/jobs", headers=BOB).json()["items"]}
    # A session is bound to the principal that opened it: another one cannot use it.
    session = open_raw_session(service, **ALICE)
    stolen = httpx.post(service.mcp_url, headers={**session, **BOB}, json=tool_call(1, {}))
    assert stolen.status_code == 404


def test_the_hosts_openapi_lists_the_service_routes_with_their_errors(host: ServiceProcess) -> None:
    spec = httpx.get(f"{host.base_url}/openapi.json").json()
    paths = spec["paths"]
    assert {"/users/me", f"{PREFIX}/jobs", f"{PREFIX}/jobs/{{job_id}}", f"{PREFIX}/jobs/{{job_id}}/events"} <= set(
        paths
    )
    assert f"{PREFIX}/healthz" in paths
    create = paths[f"{PREFIX}/jobs"]["post"]
    assert {"202", "401", "413", "429", "431"} <= set(create["responses"])
    body = spec["components"]["schemas"]["JobCreate"]
    assert body["properties"]["count"]["maximum"] == 100_000  # SERVICE_MAX_COUNT's default, stated


def test_the_service_guards_its_own_paths_and_leaves_the_hosts_alone(
    service: HostEndpoint, host: ServiceProcess
) -> None:
    large = {"X-Padding": "x" * 40_000, **ALICE}  # over SERVICE_MAX_HEADER_BYTES
    refused = httpx.get(f"{service.base_url}/jobs", headers=large)
    assert refused.status_code == 431
    assert "SERVICE_MAX_HEADER_BYTES" in refused.json()["detail"]
    assert httpx.get(f"{host.base_url}/users/me", headers=large).status_code == 200
    rebound = httpx.get(f"{service.base_url}/jobs", headers={**ALICE, "Host": "attacker.example"})
    assert rebound.status_code == 421
    assert httpx.get(f"{host.base_url}/users/me", headers={**ALICE, "Host": "attacker.example"}).status_code == 200
    answered = httpx.get(f"{service.base_url}/jobs", headers=ALICE)
    assert answered.headers["x-request-id"]
    invalid = httpx.post(f"{service.base_url}/jobs", headers=ALICE, json={"interval": "NaN", "count": 1, "caller": "x"})
    assert invalid.status_code == 422
    assert "input" not in invalid.json()["detail"][0]  # the service's own handler, not FastAPI's default


def test_behind_a_proxys_root_path_the_dashboard_links_under_it(tmp_path: Path) -> None:
    """uvicorn's `--root-path` for a proxy that serves the app at `/api` and strips it from the path."""
    with running_host_app(tmp_path, "--root-path", "/api") as host:
        page = httpx.get(f"{host.base_url}{PREFIX}/dashboard")
        assert '<base href="/api/notify/">' in page.text
        assert 'src="dashboard/assets/dashboard.js"' in page.text  # relative to the base
        assert httpx.get(f"{host.base_url}{PREFIX}/dashboard/assets/dashboard.js").status_code == 200


@pytest.mark.anyio
async def test_sigterm_under_plain_uvicorn_ends_a_streaming_call_and_records_it(tmp_path: Path) -> None:
    process = host_process(tmp_path).start()
    result, stopped = await stopped_during_a_call(process, HostEndpoint(process), caller="long", headers=ALICE)
    # uvicorn's own command waits for open responses without a bound (no graceful timeout):
    # the call ends because the service interrupts its job as the signal arrives.
    assert stopped < 3, process.log()
    assert result.is_error
    assert "Interrupted after" in result.content[0].text  # type: ignore[union-attr]
    with running_host_app(tmp_path) as restarted:
        jobs = httpx.get(f"{restarted.base_url}{PREFIX}/jobs", headers=ALICE).json()["items"]
        (job,) = [job for job in jobs if job["caller"] == "long"]
        assert job["status"] == "interrupted"


def test_the_hosts_own_tool_runs_as_a_task_in_both_eras(service: HostEndpoint) -> None:
    """A host's tool that says `taskSupport: optional` is a task for a client that can take one: its handler runs
    as the task's job, bound to the host's user; a JSON-RPC error it raises fails the task."""
    report = {"name": "build-report", "arguments": {"name": "q3", "seconds": 0.3}}
    _, created = modern(service, "tools/call", report, auth="alice-key")
    task_id = created["result"]["taskId"]
    _, done = wait_for_status(service, task_id, {"completed"}, auth="alice-key")
    assert done["result"]["result"]["content"][0]["text"] == "Report q3 is ready"
    _, hidden = modern(service, "tasks/get", {"taskId": task_id}, auth="bob-key")
    assert hidden["error"]["code"] == -32602
    failing = {"name": "build-report", "arguments": {"seconds": 0.1, "fail": True}}
    _, created = modern(service, "tools/call", failing, auth="alice-key")
    _, failed = wait_for_status(service, created["result"]["taskId"], {"failed"}, auth="alice-key")
    assert failed["result"]["error"] == {"code": -32603, "message": "the report's data source is down"}
    _, inline = modern(service, "tools/call", report, declared=False, auth="alice-key")
    assert inline["result"]["content"][0]["text"] == "Report q3 is ready"
    # 2025-11-25: the client asks, and waits with `tasks/result`.
    session = open_raw_session(service, **ALICE)
    _, listed = rpc(service, session, "tools/list", {})
    assert {tool["name"]: tool.get("execution") for tool in listed["result"]["tools"]}["build-report"] == {
        "taskSupport": "optional"
    }
    _, legacy = rpc(service, session, "tools/call", {**report, "task": {}})
    _, result = rpc(service, session, "tasks/result", {"taskId": legacy["result"]["task"]["taskId"]})
    assert result["result"]["content"][0]["text"] == "Report q3 is ready"
    _, legacy = rpc(service, session, "tools/call", {**failing, "task": {}})
    _, error = rpc(service, session, "tasks/result", {"taskId": legacy["result"]["task"]["taskId"]})
    assert error["error"]["code"] == -32603


def test_a_hosts_task_cut_by_sigterm_fails_rather_than_running_twice(tmp_path: Path) -> None:
    """A host's tool cannot move (its coroutine dies with its process): SIGTERM records its task's job interrupted,
    and the task, asked for after the restart, has failed with a JSON-RPC error that says why."""
    with running_host_app(tmp_path) as process:
        report = {"name": "build-report", "arguments": {"name": "cut", "seconds": 60}}
        _, created = modern(HostEndpoint(process), "tools/call", report, auth="alice-key")
        task_id = created["result"]["taskId"]
    with running_host_app(tmp_path) as restarted:
        _, failed = modern(HostEndpoint(restarted), "tasks/get", {"taskId": task_id}, auth="alice-key")
    assert failed["result"]["status"] == "failed"
    assert failed["result"]["error"]["code"] == -32603
    assert "stopped" in failed["result"]["error"]["message"]
