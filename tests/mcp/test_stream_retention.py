"""A session that lives for hours keeps only its last few minutes of streams, in every store.

A tool call's stream is resumable for `SERVICE_STREAM_RETENTION` seconds once its result is
sent, then goes, though its session lives on; a call still streaming keeps all of its own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from harness.clients import open_raw_session, tool_call
from harness.service import ServiceProcess, running_service
from harness.sse import parse_sse
from service.cluster.redis_server import RedisServer
from tests.support import wait_for

RETENTION = 1.0
CALLS = 20


@pytest.fixture(params=["memory", "sqlite", "redis"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceProcess]:
    # Finished jobs' own logs go at once: what the store holds is then the session's.
    env = {"SERVICE_STORE": request.param, "SERVICE_STREAM_RETENTION": str(RETENTION), "SERVICE_JOB_RETENTION": "0"}
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis")
        env |= {"SERVICE_REDIS_URL": redis.url, "SERVICE_REDIS_PREFIX": f"streams{uuid4().hex[:8]}"}
    with running_service(tmp_path, **env) as running:
        yield running


def event_ids(service: ServiceProcess, session: dict[str, str], request_id: int, count: int) -> list[str]:
    call = tool_call(request_id, {"interval": 0, "count": count, "caller": "finished"})
    with httpx.stream("POST", service.mcp_url, headers=session, json=call) as response:
        return [line[4:] for line in response.iter_lines() if line.startswith("id: ")]


def resume(service: ServiceProcess, session: dict[str, str], last_event_id: str) -> httpx.Response:
    return httpx.get(service.mcp_url, headers={**session, "Last-Event-ID": last_event_id}, timeout=20)


def stored_events(service: ServiceProcess) -> int:
    return int(httpx.get(f"{service.base_url}/healthz").json()["stored_events"])


def test_finished_calls_expire_while_the_session_lives_and_a_running_call_keeps_its_stream(
    service: ServiceProcess,
) -> None:
    session = open_raw_session(service)
    running_ids: list[str] = []
    running_call = tool_call(1, {"interval": 0.1, "count": 40, "caller": "running"})

    def follow_the_running_call() -> None:
        with httpx.stream("POST", service.mcp_url, headers=session, json=running_call, timeout=20) as response:
            for line in response.iter_lines():
                if line.startswith("id: "):
                    running_ids.append(line[4:])
                if len(running_ids) >= 3:
                    return  # the client drops the stream; the call goes on

    follower = threading.Thread(target=follow_the_running_call)
    follower.start()
    finished = [event_ids(service, session, 100 + i, 5) for i in range(CALLS)]
    follower.join()
    assert all(len(ids) == 7 for ids in finished)  # priming, 5 notifications, the result
    # Within the retention the last finished call still resumes: the rest of it, then its result.
    assert resume(service, session, finished[-1][-2]).status_code == 200

    # Once the retention ran out (and the purge's next pass), the finished calls' events are gone...
    def expired() -> bool:
        return resume(service, session, finished[-1][1]).status_code == 400

    wait_for(expired, timeout=RETENTION + 10, interval=0.2)
    for ids in finished:
        answer = resume(service, session, ids[1])
        assert answer.status_code == 400
        assert "Cannot resume" in answer.json()["error"]["message"]
    # ...while the call still streaming resumes from its first notification, to its result.
    with httpx.stream(
        "GET", service.mcp_url, headers={**session, "Last-Event-ID": running_ids[1]}, timeout=20
    ) as response:
        assert response.status_code == 200
        events = list(parse_sse(response.iter_lines()))
    messages = [json.loads(event.data) for event in events]
    notes = [m["params"]["data"] for m in messages if m.get("method") == "notifications/message"]
    assert notes == [f"Notification {n}/40 for running" for n in range(2, 41)]
    assert messages[-1]["result"]["structuredContent"]["sent"] == 40
    # The finished calls' 7 x 20 events went from the store: what is left is the running call's at most.
    assert stored_events(service) <= 42 + 40 + 2  # its stream, its job's log, the session's priming events
