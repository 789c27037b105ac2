"""Tasks across replicas: made on one, read, awaited and cancelled on the others, and carried to their end once
by a survivor when the replica that ran them dies (a task is a job: the failover issue's takeover moves it)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import httpx

from harness.clients import open_raw_session
from harness.cluster import ClusterProcess
from harness.service import OnLoopback
from harness.tasks import modern, rpc, wait_for_status
from service.tools.notification_stream import TOOL_NAME
from tests.cluster.conftest import LEASE
from tests.cluster.test_cluster import events_of, indexes_of


@dataclass(frozen=True)
class Replica(OnLoopback):
    """One replica, addressed directly (not through the balancer)."""

    port: int


def replica(cluster: ClusterProcess, index: int) -> Replica:
    return Replica(cluster.port + index)


def create(endpoint: Replica, count: int, interval: float, caller: str) -> str:
    arguments = {"count": count, "interval": interval, "caller": caller}
    status, answer = modern(endpoint, "tools/call", {"name": TOOL_NAME, "arguments": arguments})
    assert status == 200, answer
    assert answer["result"]["resultType"] == "task"
    return str(answer["result"]["taskId"])


def test_a_task_made_on_one_replica_is_read_and_cancelled_on_the_others(cluster: ClusterProcess) -> None:
    task_id = create(replica(cluster, 1), 200, 0.05, "task-moved")
    status, found = modern(replica(cluster, 2), "tasks/get", {"taskId": task_id})  # recorded before the answer
    assert status == 200, found
    assert found["result"]["status"] == "working"
    status, ack = modern(replica(cluster, 3), "tasks/cancel", {"taskId": task_id})
    assert status == 200, ack
    _, cancelled = wait_for_status(replica(cluster, 2), task_id, {"cancelled"})
    assert "cancelled" in cancelled["result"]["statusMessage"].lower()


def test_a_2025_task_is_awaited_from_a_session_on_another_replica(cluster: ClusterProcess) -> None:
    arguments = {"count": 10, "interval": 0.05, "caller": "task-awaited"}
    params = {"name": TOOL_NAME, "arguments": arguments, "task": {}}
    _, created = rpc(replica(cluster, 1), open_raw_session(replica(cluster, 1)), "tools/call", params)
    task_id = created["result"]["task"]["taskId"]
    _, result = rpc(replica(cluster, 3), open_raw_session(replica(cluster, 3)), "tasks/result", {"taskId": task_id})
    assert result["result"]["structuredContent"] == {
        "job_id": task_id,
        "status": "completed",
        "sent": 10,
        "count": 10,
        "caller": "task-awaited",
    }


def test_a_task_whose_replica_dies_completes_once_on_a_survivor(cluster: ClusterProcess) -> None:
    """kill -9 while the task runs: a survivor claims its job once the lease lapses and goes on from the next
    notification; the client, polling any replica, sees it complete, each notification sent once."""
    count = 60
    task_id = create(replica(cluster, 2), count, 0.05, "task-survives")
    time.sleep(1.0)
    old = cluster.pids["r2"]
    os.kill(old, signal.SIGKILL)
    _, done = wait_for_status(replica(cluster, 1), task_id, {"completed"}, timeout=count * 0.05 + LEASE * 6)
    assert done["result"]["result"]["structuredContent"]["sent"] == count
    job = httpx.get(f"{cluster.replica_url(3)}/jobs/{task_id}").json()
    assert (job["status"], job["takeovers"], job["task"]["era"]) == ("completed", 1, "2026-07-28")
    assert job["replica"] in ("r1", "r3")
    assert indexes_of(events_of(cluster.replica_url(1), task_id)) == list(range(1, count + 1))
    cluster.wait_for_restart("r2", old)
