"""A replica killed in the middle of a 2025-11-25 tool call: its client resumes through the balancer and misses nothing.

The session's replica is killed with SIGKILL at a random notification of a long call. The
client reconnects with `GET` and `Last-Event-ID`; the balancer sends it to a survivor (or to
the replica restarted meanwhile), which adopts the session; another survivor takes the job
over and writes the rest of the call's stream into the session's log. The client gets every
notification once, in order, then the result; then the same session makes another call.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from harness.clients import Received, mcp_client
from harness.cluster import ClusterProcess
from harness.raw_session import RawSession
from service.mcp.transport import RESUME_ELSEWHERE_MS
from service.tools.notification_stream import TOOL_NAME
from tests.cluster.conftest import LEASE

pytestmark = pytest.mark.anyio

COUNT = 300
INTERVAL = 0.02


def expected(caller: str, count: int = COUNT) -> list[str]:
    return [f"Notification {index}/{count} for {caller}" for index in range(1, count + 1)]


def kill(cluster: ClusterProcess, replica: str) -> int:
    pid = cluster.pids[replica]
    os.kill(pid, signal.SIGKILL)  # no word to anyone: only its heartbeat and leases, lapsing, tell
    return pid


def raw_call(
    session: RawSession, request_id: int, count: int, caller: str, fault: Callable[[int], None] = lambda n: None
) -> tuple[list[str], dict[str, Any]]:
    """The call's log messages and its response, resuming its stream through the balancer while it breaks."""
    logs: list[str] = []

    def on_log(data: Any) -> None:
        logs.append(str(data))
        fault(len(logs))

    arguments = {"interval": INTERVAL, "count": count, "caller": caller}
    answer = session.call(request_id, arguments, on_log, time.monotonic() + count * INTERVAL + 60)
    assert answer is not None, session.errors
    return logs, answer


def test_a_raw_client_whose_replica_is_killed_mid_call_resumes_and_misses_nothing(cluster: ClusterProcess) -> None:
    session = RawSession(cluster, LEASE)
    replica = session.replica
    kill_at = random.randint(20, COUNT - 40)  # where in the call the fault lands
    killed: list[int] = []

    def fault(received: int) -> None:
        if received == kill_at:
            killed.append(kill(cluster, replica))

    logs, answer = raw_call(session, 1, COUNT, "raw", fault)
    assert killed, "the call ended before the fault"
    assert session.refused == 0, session.errors  # the first resumption through the balancer is answered
    assert logs == expected("raw"), f"killed at {kill_at}"  # once each, in order
    result = answer["result"]["structuredContent"]
    assert (answer["id"], result["status"], result["sent"]) == (1, "completed", COUNT)
    # The same session, another call: no new `initialize`, wherever the session is held now.
    logs, again = raw_call(session, 2, 5, "raw")
    assert again["result"]["structuredContent"]["status"] == "completed"
    assert logs == expected("raw", 5)
    cluster.wait_for_restart(replica, killed[0])


def test_a_raw_client_whose_replica_drains_is_told_to_resume_at_once(cluster: ClusterProcess) -> None:
    """SIGTERM ends the call's stream with a `retry:` hint short of the SDK client's default second, and the
    client, resuming after it, gets the rest from the replica that took the job over."""
    session = RawSession(cluster, LEASE)
    replica = session.replica
    stopped: list[int] = []

    def fault(received: int) -> None:
        if received == 50:
            stopped.append(cluster.pids[replica])
            os.kill(stopped[0], signal.SIGTERM)

    logs, answer = raw_call(session, 1, 150, "raw-drained", fault)
    assert stopped, "the call ended before the fault"
    assert session.retries == [RESUME_ELSEWHERE_MS], session.retries  # the priming event has none here
    assert session.refused == 0, session.errors
    assert logs == expected("raw-drained", 150)
    assert answer["result"]["structuredContent"]["status"] == "completed"
    cluster.wait_for_restart(replica, stopped[0])


async def test_the_python_sdk_client_resumes_by_itself_when_its_replica_is_killed(cluster: ClusterProcess) -> None:
    """The SDK's client reconnects twice at most, its `retry` apart: the survivor holds its GET until it can adopt
    the session (the dead holder's heartbeat lapses within a lease), so the first reconnect is enough."""
    kill_at = random.randint(20, COUNT - 40)
    killed: list[int] = []
    replica = ""

    def fault(received: int) -> None:
        nonlocal replica
        if received == 1:  # which replica runs the call
            replica = running_replica_of(cluster, "sdk")
        if received == kill_at:
            killed.append(kill(cluster, replica))

    received = Received(after_log=fault)
    async with mcp_client(cluster.mcp_url, received=received) as client:
        result = await client.call_tool(TOOL_NAME, {"interval": INTERVAL, "count": COUNT, "caller": "sdk"})
        assert killed, "the call ended before the fault"
        assert not result.is_error, result
        assert await received.settled(COUNT) == expected("sdk"), f"killed at {kill_at}"
        assert result.structured_content is not None
        assert (result.structured_content["status"], result.structured_content["sent"]) == ("completed", COUNT)
        received.logs.clear()
        again = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 5, "caller": "sdk"})
        assert not again.is_error, again
        assert await received.settled(5) == expected("sdk", 5)
    cluster.wait_for_restart(replica, killed[0])


async def test_a_replica_stopped_with_sigterm_hands_its_calls_over_to_another(cluster: ClusterProcess) -> None:
    """A rolling restart's step, seen by the SDK's client: its call's stream ends without a result, its session is
    released and its job handed over at once; it resumes on a survivor and gets the rest, then makes another call."""
    stopped: list[int] = []
    replica = ""

    def fault(received: int) -> None:
        nonlocal replica
        if received == 1:
            replica = running_replica_of(cluster, "drained")
        if received == 50:
            stopped.append(cluster.pids[replica])
            os.kill(stopped[0], signal.SIGTERM)

    received = Received(after_log=fault)
    async with mcp_client(cluster.mcp_url, received=received) as client:
        result = await client.call_tool(TOOL_NAME, {"interval": INTERVAL, "count": 150, "caller": "drained"})
        assert stopped, "the call ended before the fault"
        assert not result.is_error, result
        assert await received.settled(150) == expected("drained", 150)
        assert result.structured_content is not None
        assert (result.structured_content["status"], result.structured_content["sent"]) == ("completed", 150)
        received.logs.clear()
        again = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 5, "caller": "drained"})
        assert not again.is_error, again
        assert await received.settled(5) == expected("drained", 5)
    cluster.wait_for_restart(replica, stopped[0])


def running_replica_of(cluster: ClusterProcess, caller: str) -> str:
    """The replica that runs `caller`'s job: its record says."""
    jobs = httpx.get(f"{cluster.base_url}/jobs", params={"status": "running"}).json()["items"]
    (job,) = [job for job in jobs if job["caller"] == caller]
    return str(job["replica"])


async def test_a_rolling_restart_under_load_fails_no_call_and_loses_nothing(cluster: ClusterProcess) -> None:
    """SIGTERM each replica in turn, waiting for it to come back, while six SDK clients call the tool in a loop: every
    call gets its result and each of its notifications once."""
    clients = 6
    failures: list[str] = []
    calls = [0] * clients
    restarting = anyio.Event()

    async def caller(index: int) -> None:
        received = Received()
        async with mcp_client(cluster.mcp_url, received=received) as client:
            while not restarting.is_set() or calls[index] == 0:
                name = f"roll{index}-{calls[index]}"
                received.logs.clear()
                calls[index] += 1
                with anyio.move_on_after(30) as bound:
                    result = await client.call_tool(TOOL_NAME, {"interval": INTERVAL, "count": 40, "caller": name})
                if bound.cancelled_caught:
                    failures.append(f"{name}: no result in 30 s, after {len(received.logs)} notifications")
                    return
                if result.is_error or await received.settled(40) != expected(name, 40):
                    failures.append(f"{name}: {result.content} with {len(received.logs)} notifications")

    async def roll() -> None:
        await anyio.sleep(1.0)
        for replica in ("r1", "r2", "r3"):
            old = cluster.pids[replica]
            os.kill(old, signal.SIGTERM)
            await anyio.to_thread.run_sync(cluster.wait_for_restart, replica, old)
            await anyio.sleep(1.0)
        restarting.set()

    with anyio.fail_after(90):
        async with anyio.create_task_group() as load:
            for index in range(clients):
                load.start_soon(caller, index)
            load.start_soon(roll)
    assert failures == []
    assert sum(calls) >= clients * 2


def test_a_session_replica_paused_past_its_lease_writes_nothing_stale(cluster: ClusterProcess) -> None:
    """SIGSTOP beyond the lease, then SIGCONT: the call's job moved while the replica stood still; thawed, it writes
    nothing more on the call's stream and gives its sessions up, and the client gets the rest once, from the log."""
    session = RawSession(cluster, LEASE)
    paused: list[int] = []

    def fault(received: int) -> None:
        if received == 30:
            # The replica that runs the call: the session's home, unless the balancer had it marked down (a restart
            # just before) and another replica adopted the session.
            paused.append(cluster.pids[running_replica_of(cluster, "paused")])
            os.kill(paused[0], signal.SIGSTOP)
            time.sleep(LEASE * 2.5)  # the client waits as well: it sees a quiet stream
            os.kill(paused[0], signal.SIGCONT)

    logs, answer = raw_call(session, 1, 150, "paused", fault)
    assert paused, "the call ended before the fault"
    assert logs == expected("paused", 150)  # once each: nothing stale from the thawed replica
    result = answer["result"]["structuredContent"]
    assert (result["status"], result["sent"]) == ("completed", 150)
    job = httpx.get(f"{cluster.base_url}/jobs/{result['job_id']}").json()
    assert job["takeovers"] == 1
    logs, again = raw_call(session, 2, 5, "paused")
    assert again["result"]["structuredContent"]["status"] == "completed"
    assert logs == expected("paused", 5)
