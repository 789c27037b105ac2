"""Three replicas on one real redis-server behind a real Caddy, then nginx: `mcp-notification-service cluster`.

Every test talks to the cluster as users do: MCP clients through the balancer, REST calls
to whichever replica, and a look at the shared store to see who ran what.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest

from harness.clients import MCP_HEADERS, Received, ensure_node_client, mcp_client, open_raw_session, run_node_client
from harness.cluster import ClusterProcess
from harness.sse import SseEvent, parse_sse
from service.domain.jobs import JobRecord
from service.stores.redis import RedisStorage
from service.tools.notification_stream import TOOL_NAME
from tests.cluster.conftest import LEASE, MAX_JOBS, REPLICAS
from tests.support import unavailable, wait_for

pytestmark = pytest.mark.anyio

LONG = {"interval": 0.05, "count": 400, "caller": "long"}


def replica_of(job: JobRecord) -> str:
    assert job.runner is not None
    return job.runner.split("-", 1)[0]


def start_job(url: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/jobs", json={**LONG, **body})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def test_each_replica_names_itself_and_the_shared_store(cluster: ClusterProcess) -> None:
    for index in range(1, REPLICAS + 1):
        health = httpx.get(f"{cluster.replica_url(index)}/healthz").json()
        assert (health["replica"], health["store"]) == (f"r{index}", "redis")
    seen = {httpx.get(f"{cluster.base_url}/healthz").json()["replica"] for _ in range(12)}
    assert seen == {f"r{index}" for index in range(1, REPLICAS + 1)}  # round-robin for what has no session


async def test_a_legacy_session_is_held_by_one_replica_and_gets_every_notification(
    cluster: ClusterProcess, store: RedisStorage
) -> None:
    received = Received()
    async with mcp_client(cluster.mcp_url, received=received) as client:
        result = await client.call_tool(TOOL_NAME, {"interval": 0.01, "count": 30, "caller": "legacy"})
        again = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 5, "caller": "legacy"})
    assert not result.is_error
    assert not again.is_error
    assert received.logs == [f"Notification {i}/30 for legacy" for i in range(1, 31)] + [
        f"Notification {i}/5 for legacy" for i in range(1, 6)
    ]
    ids = [content["job_id"] for content in (result.structured_content, again.structured_content) if content]
    jobs = [await store.get_job(job_id) for job_id in ids]
    assert all(job is not None for job in jobs)
    (session,) = {job.session_id for job in jobs if job is not None}
    assert session is not None
    assert {replica_of(job) for job in jobs if job is not None} == {session.split(".")[0]}


async def test_2026_calls_are_spread_over_every_replica(cluster: ClusterProcess, store: RedisStorage) -> None:
    received = Received()
    ids = []
    async with mcp_client(cluster.mcp_url, mode="auto", received=received) as client:
        for call in range(9):
            result = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 3, "caller": f"c{call}"})
            assert not result.is_error
            assert result.structured_content is not None
            ids.append(result.structured_content["job_id"])
    # A 2026 client gets logs only when it asks; `mcp_client` asks (`log_level="info"`), whichever replica answers.
    assert received.logs == [f"Notification {i}/3 for c{call}" for call in range(9) for i in range(1, 4)]
    runners = [await store.get_job(job_id) for job_id in ids]
    assert {replica_of(job) for job in runners if job is not None} == {f"r{i}" for i in range(1, REPLICAS + 1)}


def test_the_typescript_client_through_the_balancer(cluster: ClusterProcess) -> None:
    if (problem := ensure_node_client()) is not None:
        unavailable(problem)
    out = run_node_client(
        {"url": cluster.mcp_url, "tool": TOOL_NAME, "arguments": {"interval": 0.01, "count": 20, "caller": "ts"}}
    )
    assert "error" not in out, out
    assert out["logs"] == [f"Notification {i}/20 for ts" for i in range(1, 21)]
    assert out["result"]["structuredContent"]["status"] == "completed"
    assert out["sessionId"].startswith(("r1.", "r2.", "r3."))


def events_of(url: str, job_id: str, *, last_event_id: str = "", stop_after: int | None = None) -> list[SseEvent]:
    """The `notification` events (and the final `end`) of a job's SSE stream, from one replica."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events = []
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for event in parse_sse(response.iter_lines()):
            events.append(event)
            if stop_after is not None and len([e for e in events if e.event == "notification"]) >= stop_after:
                break
    return events


def test_a_job_is_read_followed_resumed_and_cancelled_from_the_other_replicas(cluster: ClusterProcess) -> None:
    r1, r2, r3 = (cluster.replica_url(index) for index in (1, 2, 3))
    job = start_job(r1, interval=0.02, count=300)
    assert httpx.get(f"{r2}/jobs/{job['id']}").json()["status"] in ("pending", "running")
    assert job["id"] in [listed["id"] for listed in httpx.get(f"{r3}/jobs", params={"limit": 500}).json()["items"]]

    first = events_of(r3, job["id"], stop_after=5)  # followed live from r3, then dropped
    notifications = [event for event in first if event.event == "notification"]
    assert [json.loads(event.data)["index"] for event in notifications[:5]] == [1, 2, 3, 4, 5]
    assert notifications[4].id is not None

    cancelled_at = time.monotonic()
    cancelled = httpx.post(f"{r2}/jobs/{job['id']}/cancel").json()
    assert time.monotonic() - cancelled_at < 1.5
    assert cancelled["status"] == "cancelled"
    assert 5 <= cancelled["sent"] < 300

    # Resumed on r2 from the last event r3 delivered: the rest, once each, then the end.
    rest = events_of(r2, job["id"], last_event_id=notifications[4].id)
    indices = [json.loads(event.data)["index"] for event in rest if event.event == "notification"]
    assert indices == list(range(6, cancelled["sent"] + 1))
    assert json.loads(rest[-1].data)["status"] == "cancelled"
    assert httpx.get(f"{r1}/jobs/{job['id']}").json()["status"] == "cancelled"


def test_a_job_deleted_on_one_replica_is_gone_from_all(cluster: ClusterProcess) -> None:
    job = start_job(cluster.replica_url(2))
    assert httpx.delete(f"{cluster.replica_url(3)}/jobs/{job['id']}").status_code == 204
    for index in range(1, REPLICAS + 1):
        assert httpx.get(f"{cluster.replica_url(index)}/jobs/{job['id']}").status_code == 404


async def test_a_rest_job_reaches_a_session_held_by_another_replica(cluster: ClusterProcess) -> None:
    headers = open_raw_session(cluster)
    holder = int(headers["mcp-session-id"].split(".")[0].removeprefix("r"))
    others = [index for index in range(1, REPLICAS + 1) if index != holder]
    got: list[str] = []
    async with httpx.AsyncClient(timeout=30) as http, anyio.create_task_group() as tasks:

        async def listen() -> None:
            get_headers = {**headers, "accept": "text/event-stream"}
            async with http.stream("GET", cluster.mcp_url, headers=get_headers) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data: {"):
                        got.append(json.loads(line[6:])["params"]["data"])

        tasks.start_soon(listen)
        await anyio.sleep(0.3)
        for index in others:
            body = {"interval": 0.01, "count": 3, "caller": f"from-r{index}", "session_id": headers["mcp-session-id"]}
            response = await http.post(f"{cluster.replica_url(index)}/jobs", json=body)
            assert response.status_code == 202, response.text
        with anyio.fail_after(10):
            while len(got) < 3 * len(others):
                await anyio.sleep(0.05)
        tasks.cancel_scope.cancel()
    for index in others:
        assert [line for line in got if line.endswith(f"from-r{index}")] == [
            f"Notification {i}/3 for from-r{index}" for i in range(1, 4)
        ]
    # A session no replica holds is refused by each.
    body = {"interval": 0, "count": 1, "caller": "x", "session_id": "r1.unknown"}
    assert httpx.post(f"{cluster.replica_url(2)}/jobs", json=body).status_code == 404


def test_max_jobs_holds_across_replicas(cluster: ClusterProcess) -> None:
    started = [start_job(cluster.replica_url(1 + index % REPLICAS)) for index in range(MAX_JOBS)]
    try:
        for index in range(1, REPLICAS + 1):
            refused = httpx.post(f"{cluster.replica_url(index)}/jobs", json=LONG)
            assert refused.status_code == 429
            assert "SERVICE_MAX_JOBS" in refused.json()["detail"]
    finally:
        for job in started:
            httpx.post(f"{cluster.replica_url(2)}/jobs/{job['id']}/cancel")
    assert httpx.post(f"{cluster.replica_url(3)}/jobs", json={**LONG, "count": 1}).status_code == 202


def test_a_restarted_replica_leaves_the_others_running_jobs_alone(cluster: ClusterProcess) -> None:
    jobs = [start_job(cluster.replica_url(index)) for index in (1, 2)]
    old = cluster.pids["r3"]
    os.kill(old, signal.SIGTERM)
    cluster.wait_for_restart("r3", old)
    try:
        for job in jobs:
            seen = httpx.get(f"{cluster.replica_url(3)}/jobs/{job['id']}").json()
            assert seen["status"] == "running", seen
        before = [httpx.get(f"{cluster.replica_url(3)}/jobs/{job['id']}").json()["sent"] for job in jobs]
        time.sleep(1.5)  # progress is saved once a second
        after = [httpx.get(f"{cluster.replica_url(3)}/jobs/{job['id']}").json()["sent"] for job in jobs]
        assert all(b > a for a, b in zip(before, after, strict=True)), (before, after)
    finally:
        for job in jobs:
            httpx.delete(f"{cluster.replica_url(1)}/jobs/{job['id']}")


def indexes_of(events: list[SseEvent]) -> list[int]:
    return [json.loads(event.data)["index"] for event in events if event.event == "notification"]


def test_the_jobs_of_a_replica_that_died_are_taken_over_and_completed(cluster: ClusterProcess) -> None:
    """kill -9: a survivor claims its REST job once the lease expires and goes on from the next notification;
    a follower on a survivor sees nothing but a pause, one on the dead replica resumes through the balancer."""
    count = 80
    job = start_job(cluster.replica_url(2), interval=0.05, count=count)
    with ThreadPoolExecutor(2) as pool:
        steady = pool.submit(events_of, cluster.replica_url(1), job["id"])
        cut = pool.submit(events_of, cluster.replica_url(2), job["id"], stop_after=count)  # cut by the kill
        time.sleep(1.0)
        old = cluster.pids["r2"]
        os.kill(old, signal.SIGKILL)  # no word to anyone: only its lease, expiring, tells
        died = time.monotonic()

        def taken_over() -> bool:
            return bool(httpx.get(f"{cluster.replica_url(1)}/jobs/{job['id']}").json()["takeovers"] == 1)

        wait_for(taken_over, timeout=LEASE * 4)
        # Its lease expires at most LEASE after its last renewal (before the kill), and a survivor claims it
        # within a third of a lease after that. The wait above allows more, so that this can fail.
        took = time.monotonic() - died
        assert took < LEASE * 2, f"taken over {took:.2f} s after the kill (lease {LEASE} s)"
        with pytest.raises(httpx.HTTPError):
            cut.result(timeout=10)
        followed = steady.result(timeout=count * 0.05 + LEASE * 4)
    assert indexes_of(followed) == list(range(1, count + 1))  # once each, in order, across the takeover
    final = json.loads(followed[-1].data)
    assert (final["status"], final["sent"], final["takeovers"]) == ("completed", count, 1)
    assert final["replica"] in ("r1", "r3")
    # A follower that was on the dead replica reconnects through the balancer with the last id it had.
    partial = events_of(cluster.replica_url(1), job["id"], stop_after=5)
    rest = events_of(cluster.base_url, job["id"], last_event_id=partial[4].id or "")
    assert indexes_of(rest) == list(range(6, count + 1))
    cluster.wait_for_restart("r2", old)
    expired = [
        line
        for index in (1, 2, 3)
        for line in httpx.get(f"{cluster.replica_url(index)}/metrics").text.splitlines()
        if line.startswith("mns_leases_expired_total ")
    ]
    assert sum(float(line.split()[1]) for line in expired) >= 1
    # Its share of SERVICE_MAX_JOBS went with its lease: the survivors have every slot.
    started = [start_job(cluster.replica_url(1 + 2 * (index % 2))) for index in range(MAX_JOBS)]
    for started_job in started:
        httpx.delete(f"{cluster.replica_url(1)}/jobs/{started_job['id']}")


def test_a_replica_stopped_with_sigterm_hands_its_jobs_over_at_once(cluster: ClusterProcess) -> None:
    """A rolling restart's step: the draining replica releases its REST job's lease instead of recording it
    interrupted, and a survivor goes on with it at its next look, without waiting out the lease."""
    count = 80
    job = start_job(cluster.replica_url(2), interval=0.05, count=count)
    time.sleep(0.5)  # younger than a lease: handed over at once all the same
    with ThreadPoolExecutor(1) as pool:
        followed = pool.submit(events_of, cluster.replica_url(1), job["id"])
        old = cluster.pids["r2"]
        os.kill(old, signal.SIGTERM)
        stopped = time.monotonic()
        wait_for(
            lambda: httpx.get(f"{cluster.replica_url(1)}/jobs/{job['id']}").json()["takeovers"] == 1,
            timeout=LEASE * 4,
        )
        took = time.monotonic() - stopped
        events = followed.result(timeout=count * 0.05 + LEASE * 4)
    assert took < LEASE, f"taken over {took:.2f} s after SIGTERM: the lease was waited out ({LEASE} s)"
    assert indexes_of(events) == list(range(1, count + 1))
    final = json.loads(events[-1].data)
    assert (final["status"], final["sent"], final["takeovers"]) == ("completed", count, 1)
    cluster.wait_for_restart("r2", old)


def test_a_replica_paused_past_its_lease_writes_nothing_stale(cluster: ClusterProcess) -> None:
    """SIGSTOP beyond the lease, then SIGCONT: its job has moved, it notices, and neither its notifications
    nor its record get into the store; the job completes once, where it moved."""
    count = 60
    job = start_job(cluster.replica_url(3), interval=0.05, count=count)
    time.sleep(0.8)
    pid = cluster.pids["r3"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: httpx.get(f"{cluster.replica_url(1)}/jobs/{job['id']}").json()["takeovers"] == 1,
            timeout=LEASE * 4,
        )
        time.sleep(LEASE)
    finally:
        os.kill(pid, signal.SIGCONT)
    followed = events_of(cluster.replica_url(1), job["id"])
    assert indexes_of(followed) == list(range(1, count + 1)), followed[-1].data
    time.sleep(LEASE)  # time for the thawed replica to do whatever it would
    final = httpx.get(f"{cluster.replica_url(3)}/jobs/{job['id']}").json()
    assert (final["status"], final["sent"], final["takeovers"]) == ("completed", count, 1)
    assert final["replica"] in ("r1", "r2")
    again = events_of(cluster.replica_url(2), job["id"])
    assert indexes_of(again) == list(range(1, count + 1))  # the log holds nothing the thawed replica wrote


def test_a_redis_pause_loses_no_notification(cluster: ClusterProcess) -> None:
    """Redis stands still for 5 s (longer than the leases) under three REST jobs: each waits for it, then ends
    completed, its log holds every notification once, and its record's count is its log's."""
    count = 100
    jobs = [start_job(cluster.replica_url(index), interval=0.05, count=count) for index in (1, 2, 3)]
    time.sleep(1.0)
    os.kill(cluster.pids["redis"], signal.SIGSTOP)
    paused = time.monotonic()
    try:
        # Meanwhile no request waits on Redis for more than about a second: new work, reads and the health
        # probe are answered 503, with `Retry-After` and what is wrong, or (a read) from what the replica has.
        time.sleep(0.5)
        for method, url in (
            ("POST", f"{cluster.replica_url(2)}/jobs"),
            ("GET", f"{cluster.replica_url(3)}/jobs/{jobs[0]['id']}"),
            ("GET", f"{cluster.replica_url(1)}/healthz"),
        ):
            asked = time.monotonic()
            response = httpx.request(method, url, json=LONG if method == "POST" else None, timeout=10)
            took = time.monotonic() - asked
            assert took < 2.5, f"{response.request.method} {response.request.url.path} took {took:.2f} s"
            if response.status_code != 200:
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"]
                assert "Redis" in response.json()["detail"]
        time.sleep(max(0.0, 5 - (time.monotonic() - paused)))
    finally:
        os.kill(cluster.pids["redis"], signal.SIGCONT)
    for job in jobs:
        followed = events_of(cluster.replica_url(1), job["id"])
        assert indexes_of(followed) == list(range(1, count + 1)), followed[-1].data
        final = json.loads(followed[-1].data)
        assert (final["status"], final["sent"]) == ("completed", count)


def test_the_changes_feed_of_one_replica_follows_a_job_of_another(cluster: ClusterProcess) -> None:
    job = start_job(cluster.replica_url(1), interval=0.1, count=30)
    seen = []
    with httpx.stream("GET", f"{cluster.replica_url(3)}/jobs/changes", params={"limit": 200}, timeout=30) as feed:
        for event in parse_sse(feed.iter_lines()):
            if event.event == "job" and json.loads(event.data)["id"] == job["id"]:
                seen.append(json.loads(event.data))
                if seen[-1]["status"] == "completed":
                    break
    assert seen[-1]["sent"] == 30
    assert any(0 < entry["sent"] < 30 for entry in seen)  # its progress on the way (r1 saves it every second)


def test_bad_input_through_the_balancer_gets_the_replicas_clear_errors(cluster: ClusterProcess) -> None:
    response = httpx.post(cluster.mcp_url, headers=MCP_HEADERS, content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    unknown = httpx.post(cluster.mcp_url, headers={**MCP_HEADERS, "mcp-session-id": "r9.nobody"}, json={})
    assert unknown.status_code in (400, 404)
