"""Start-up and shutdown of the real process: SIGTERM, restart, durability."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from harness.clients import stopped_during_a_call
from harness.service import ServiceProcess, running_service
from harness.sse import parse_sse
from tests.support import wait_for


def test_sigterm_interrupts_running_jobs_and_a_restart_keeps_them(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, {}).start()
    http = httpx.Client(base_url=service.base_url)
    ids = [
        http.post("/jobs", json={"interval": 0.02, "count": 10_000, "caller": f"long-{i}"}).json()["id"]
        for i in range(5)
    ]
    done = http.post("/jobs", json={"interval": 0, "count": 3, "caller": "short"}).json()["id"]
    wait_for(lambda: all(http.get(f"/jobs/{i}").json()["sent"] >= 3 for i in ids))
    wait_for(lambda: http.get(f"/jobs/{done}").json()["status"] == "completed")

    began = time.monotonic()
    # uvicorn shuts down gracefully, then re-raises the signal: the exit status is "killed by SIGTERM".
    assert service.stop() in (0, -signal.SIGTERM)
    assert time.monotonic() - began < 5, service.log()

    with running_service(tmp_path) as restarted:
        http = httpx.Client(base_url=restarted.base_url)
        for job_id in ids:
            job = http.get(f"/jobs/{job_id}").json()
            assert job["status"] == "interrupted"
            assert 3 <= job["sent"] < 10_000
            assert job["finished_at"] is not None
            with http.stream("GET", f"/jobs/{job_id}/events") as response:
                events = [e for e in parse_sse(response.iter_lines()) if e.event == "notification"]
            assert len(events) == job["sent"]
            assert [e.json()["index"] for e in events] == list(range(1, job["sent"] + 1))
            with http.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(events[1].id)}) as response:
                resumed = [e.id for e in parse_sse(response.iter_lines()) if e.event == "notification"]
            assert resumed == [e.id for e in events[2:]]
        assert http.get(f"/jobs/{done}").json()["status"] == "completed"


def test_a_kill_9_loses_at_most_the_flush_window(tmp_path: Path) -> None:
    """What the README promises of a crash: what was sent in the last flush interval may be lost, no more.

    With a 1 s window and a notification every 50 ms, a crash may lose about 20 of them.
    """
    window, interval = 1.0, 0.05
    settings = {"SERVICE_SQLITE_FLUSH_INTERVAL": str(window)}
    service = ServiceProcess(tmp_path, settings).start()
    http = httpx.Client(base_url=service.base_url)
    job_id = http.post("/jobs", json={"interval": interval, "count": 10_000, "caller": "crash"}).json()["id"]
    wait_for(lambda: http.get(f"/jobs/{job_id}").json()["sent"] >= 50)
    delivered = http.get(f"/jobs/{job_id}").json()["sent"]  # what the engine had sent, as of just before the kill
    service.stop(signal.SIGKILL)

    with running_service(tmp_path, **settings) as restarted:
        job = httpx.get(f"{restarted.base_url}/jobs/{job_id}").json()
    assert job["status"] == "interrupted"
    lost = delivered - job["sent"]
    assert job["sent"] > 0
    assert lost <= 2 * window / interval + 2, (delivered, job["sent"])  # twice the window: slack for a slow flush


@pytest.mark.anyio
async def test_sigterm_during_a_tool_call_records_the_job_as_interrupted(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, {}).start()
    result, stopped = await stopped_during_a_call(service, service, caller="mcp-long")
    # The jobs are interrupted as shutdown begins, so the open call ends with its result,
    # well before uvicorn's graceful timeout (SERVICE_SHUTDOWN_TIMEOUT, 3 s) would cut it.
    assert stopped < 2, service.log()
    assert result.is_error
    assert "Interrupted after" in result.content[0].text  # type: ignore[union-attr]
    with running_service(tmp_path) as restarted:
        jobs = httpx.get(f"{restarted.base_url}/jobs").json()["items"]
        (job,) = [job for job in jobs if job["caller"] == "mcp-long"]
        assert job["status"] == "interrupted"
        assert job["origin"] == "mcp"
