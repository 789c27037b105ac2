"""2026-07-28 tasks against a real service: a long call that declared the extension is a task, read and cancelled
with `tasks/*`, each with the extension's errors; anything else streams inline as before."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from harness.service import ServiceProcess, running_service
from harness.sse import parse_sse
from harness.tasks import modern, wait_for_status
from service.tasks import EXTENSION
from service.tools.notification_stream import TOOL_NAME
from tests.tasks.conftest import ALICE, BOB


@pytest.fixture
def service(users_service: ServiceProcess) -> ServiceProcess:
    return users_service


def call(service: ServiceProcess, count: int, interval: float, caller: str, **options: object) -> dict[str, object]:
    arguments = {"count": count, "interval": interval, "caller": caller}
    options.setdefault("auth", ALICE)
    status, answer = modern(service, "tools/call", {"name": TOOL_NAME, "arguments": arguments}, **options)  # type: ignore[arg-type]
    assert status == 200, answer
    return dict(answer["result"])


def test_the_extension_is_advertised_in_discover(service: ServiceProcess) -> None:
    status, answer = modern(service, "server/discover", {}, auth=ALICE)
    assert status == 200
    assert answer["result"]["capabilities"]["extensions"] == {EXTENSION: {}}
    assert "tasks" not in answer["result"]["capabilities"]  # the 2025 capability is not a 2026 one


def test_a_long_call_that_declared_the_extension_is_a_task_that_completes_with_its_result(
    service: ServiceProcess,
) -> None:
    created = call(service, 4, 0.3, "long")
    assert created["resultType"] == "task"
    assert created["status"] == "working"
    assert created["ttlMs"] == 86_400_000
    assert created["pollIntervalMs"] == 1000
    assert not {"result", "error", "inputRequests", "task"} & created.keys()
    task_id = str(created["taskId"])
    # Recorded before the answer: the very next `tasks/get` finds it.
    status, working = modern(service, "tasks/get", {"taskId": task_id}, auth=ALICE)
    assert status == 200
    assert working["result"]["resultType"] == "complete"
    assert working["result"]["status"] in {"working", "completed"}
    _, done = wait_for_status(service, task_id, {"completed"}, auth=ALICE)
    result = done["result"]["result"]
    assert result["isError"] is False
    assert result["structuredContent"] == {
        "job_id": task_id,
        "status": "completed",
        "sent": 4,
        "count": 4,
        "caller": "long",
    }
    assert "_meta" not in result
    # The task is a job: REST names it, and keeps the notifications the protocol does not send for a task.
    job = httpx.get(f"{service.base_url}/jobs/{task_id}", headers={"Authorization": f"Bearer {ALICE}"}).json()
    assert job["task"] == {"era": "2026-07-28", "tool": TOOL_NAME, "ttl_ms": 86_400_000}
    with httpx.stream(
        "GET", f"{service.base_url}/jobs/{task_id}/events", headers={"Authorization": f"Bearer {ALICE}"}, timeout=10
    ) as response:
        events = [json.loads(event.data) for event in parse_sse(response.iter_lines()) if event.event == "notification"]
    assert [event["index"] for event in events] == [1, 2, 3, 4]


def test_a_short_call_or_one_without_the_extension_streams_inline(service: ServiceProcess) -> None:
    short = call(service, 2, 0.1, "short")  # 0.2 s: under SERVICE_TASK_MIN_SECONDS
    assert short["resultType"] == "complete"
    assert short["structuredContent"]["sent"] == 2  # type: ignore[index]
    undeclared = call(service, 3, 0.4, "undeclared", declared=False)
    assert "taskId" not in undeclared
    assert undeclared["structuredContent"]["sent"] == 3  # type: ignore[index]


def test_each_task_method_refuses_a_request_without_the_extension(service: ServiceProcess) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [
        ("tasks/get", {"taskId": "gate-test"}),
        ("tasks/update", {"taskId": "gate-test", "inputResponses": {}}),
        ("tasks/cancel", {"taskId": "gate-test"}),
    ]
    for method, params in requests:
        status, answer = modern(service, method, params, declared=False, auth=ALICE)
        assert status == 400, (method, answer)
        assert answer["error"]["code"] == -32021
        assert answer["error"]["data"] == {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}


def test_an_mcp_name_that_is_not_the_task_id_is_a_header_mismatch(service: ServiceProcess) -> None:
    task_id = str(call(service, 2, 0.5, "named")["taskId"])
    status, answer = modern(service, "tasks/get", {"taskId": task_id}, name="another-task", auth=ALICE)
    assert status == 400
    assert answer["error"]["code"] == -32020


def test_an_unknown_task_and_another_principals_are_the_same_unknown_task(service: ServiceProcess) -> None:
    task_id = str(call(service, 2, 0.5, "alices")["taskId"])
    for params, token in [({"taskId": "no-such-task"}, ALICE), ({"taskId": task_id}, BOB)]:
        for method in ("tasks/get", "tasks/cancel"):
            status, answer = modern(service, method, params, auth=token)
            assert answer["error"]["code"] == -32602, (method, answer)
            assert status == 400
    wait_for_status(service, task_id, {"completed"}, auth=ALICE)  # Bob's cancel did not reach it


def test_a_cancelled_task_stops_its_job_and_a_second_cancel_is_the_same_empty_ack(service: ServiceProcess) -> None:
    task_id = str(call(service, 100, 0.1, "cancelled")["taskId"])
    for _ in range(2):
        status, answer = modern(service, "tasks/cancel", {"taskId": task_id}, auth=ALICE)
        assert status == 200
        assert answer["result"].keys() <= {"resultType", "_meta"}
        assert answer["result"]["resultType"] == "complete"
    _, cancelled = wait_for_status(service, task_id, {"cancelled"}, auth=ALICE)
    assert "result" not in cancelled["result"]
    job = httpx.get(f"{service.base_url}/jobs/{task_id}", headers={"Authorization": f"Bearer {ALICE}"}).json()
    assert job["status"] == "cancelled"
    assert job["sent"] < 100


def test_an_update_for_a_task_that_asks_nothing_is_acknowledged(service: ServiceProcess) -> None:
    task_id = str(call(service, 2, 0.5, "updated")["taskId"])
    status, answer = modern(
        service, "tasks/update", {"taskId": task_id, "inputResponses": {"unknown-key": {"ignored": True}}}, auth=ALICE
    )
    assert status == 200
    assert answer["result"]["resultType"] == "complete"


def test_the_methods_2026_removed_are_not_found(service: ServiceProcess) -> None:
    task_id = str(call(service, 2, 0.5, "removed")["taskId"])
    for method, params in [("tasks/result", {"taskId": task_id}), ("tasks/list", {})]:
        status, answer = modern(service, method, params, auth=ALICE)
        assert status == 404, (method, answer)
        assert answer["error"]["code"] == -32601


def test_a_task_expires_its_ttl_after_its_creation_once_it_has_ended(tmp_path: object) -> None:
    with running_service(tmp_path, SERVICE_JOB_RETENTION="1.5") as service:  # type: ignore[arg-type]
        began = time.monotonic()
        created = call(service, 2, 0.5, "expiring")
        task_id = str(created["taskId"])
        assert created["ttlMs"] == 1500
        wait_for_status(service, task_id, {"completed"})  # kept while it runs, and after, up to its ttl
        time.sleep(max(0.0, began + 1.7 - time.monotonic()))
        status, answer = modern(service, "tasks/get", {"taskId": task_id})
        assert (status, answer["error"]["code"]) == (400, -32602)
