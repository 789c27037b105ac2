"""2025-11-25 experimental tasks against a real service: a `tools/call` with `params.task` answers the nested
`CreateTaskResult`; `tasks/get`, `tasks/result`, `tasks/list` and `tasks/cancel` follow the 2025 text."""

from __future__ import annotations

import json

import httpx
import pytest

from harness.clients import INITIALIZE, MCP_HEADERS, open_raw_session
from harness.service import ServiceProcess
from harness.sse import parse_sse
from harness.tasks import rpc
from service.tasks import RELATED_TASK
from service.tools.notification_stream import TOOL_NAME
from tests.tasks.conftest import ALICE, BOB


@pytest.fixture
def service(users_service: ServiceProcess) -> ServiceProcess:
    return users_service


def session(service: ServiceProcess, token: str = ALICE) -> dict[str, str]:
    return open_raw_session(service, authorization=f"Bearer {token}")


def create(service: ServiceProcess, headers: dict[str, str], count: int, interval: float, caller: str) -> str:
    arguments = {"count": count, "interval": interval, "caller": caller}
    status, answer = rpc(
        service, headers, "tools/call", {"name": TOOL_NAME, "arguments": arguments, "task": {"ttl": 60_000}}
    )
    assert status == 200, answer
    task = answer["result"]["task"]
    assert (task["status"], task["ttl"], task["pollInterval"]) == ("working", 60_000, 1000)
    assert "resultType" not in answer["result"]
    return str(task["taskId"])


def test_initialize_advertises_tasks_and_the_tool_says_it_can_be_one(service: ServiceProcess) -> None:
    headers = {**MCP_HEADERS, "authorization": f"Bearer {ALICE}"}
    response = httpx.post(service.mcp_url, headers=headers, json=INITIALIZE)
    (opened,) = [json.loads(event.data) for event in parse_sse(iter(response.text.splitlines())) if event.data]
    assert opened["result"]["capabilities"]["tasks"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    _, listed = rpc(service, session(service), "tools/list", {})
    (tool,) = [tool for tool in listed["result"]["tools"] if tool["name"] == TOOL_NAME]
    assert tool["execution"] == {"taskSupport": "optional"}


def test_a_task_augmented_call_is_a_task_whose_result_waits_for_its_end(service: ServiceProcess) -> None:
    headers = session(service)
    task_id = create(service, headers, 3, 0.3, "legacy")
    status, got = rpc(service, headers, "tasks/get", {"taskId": task_id})
    assert status == 200
    assert got["result"]["taskId"] == task_id
    assert got["result"]["status"] in {"working", "completed"}
    _, result = rpc(service, headers, "tasks/result", {"taskId": task_id})  # blocks until the job ends
    assert result["result"]["structuredContent"]["sent"] == 3
    assert result["result"]["isError"] is False
    assert result["result"]["_meta"][RELATED_TASK] == {"taskId": task_id}
    _, done = rpc(service, headers, "tasks/get", {"taskId": task_id})
    assert done["result"]["status"] == "completed"


def test_a_task_outlives_the_session_that_made_it(service: ServiceProcess) -> None:
    """The client leaves (its session ends) and comes back with another: the task went on, and is there."""
    first = session(service)
    task_id = create(service, first, 3, 0.3, "left")
    assert httpx.delete(service.mcp_url, headers=first).status_code == 200
    _, result = rpc(service, session(service), "tasks/result", {"taskId": task_id})
    assert result["result"]["structuredContent"]["status"] == "completed"


def test_tasks_list_shows_the_callers_own_tasks_alone(service: ServiceProcess) -> None:
    alices = create(service, session(service), 1, 0, "listed")
    bobs = create(service, session(service, BOB), 1, 0, "listed-bob")
    _, listed = rpc(service, session(service), "tasks/list", {})
    ids = {task["taskId"] for task in listed["result"]["tasks"]}
    assert alices in ids
    assert bobs not in ids
    _, refused = rpc(service, session(service), "tasks/list", {"cursor": "not-a-cursor"})
    assert refused["error"]["code"] == -32602


def test_a_cancelled_task_is_cancelled_before_the_answer_and_cannot_be_cancelled_again(
    service: ServiceProcess,
) -> None:
    headers = session(service)
    task_id = create(service, headers, 100, 0.1, "legacy-cancelled")
    _, cancelled = rpc(service, headers, "tasks/cancel", {"taskId": task_id})
    assert cancelled["result"]["status"] == "cancelled"
    _, again = rpc(service, headers, "tasks/cancel", {"taskId": task_id})
    assert again["error"]["code"] == -32602
    assert "terminal" in again["error"]["message"]


def test_another_principals_task_is_unknown_and_2026_methods_are_not_found(service: ServiceProcess) -> None:
    task_id = create(service, session(service), 2, 0.2, "private")
    for method in ("tasks/get", "tasks/result", "tasks/cancel"):
        _, answer = rpc(service, session(service, BOB), method, {"taskId": task_id})
        assert answer["error"]["code"] == -32602, (method, answer)
    _, update = rpc(service, session(service), "tasks/update", {"taskId": task_id, "inputResponses": {}})
    assert update["error"]["code"] == -32601


def test_a_call_without_params_task_streams_inline_as_before(service: ServiceProcess) -> None:
    arguments = {"count": 2, "interval": 0.1, "caller": "inline"}
    status, answer = rpc(service, session(service), "tools/call", {"name": TOOL_NAME, "arguments": arguments})
    assert status == 200
    assert answer["result"]["structuredContent"]["sent"] == 2
