"""The REST routes over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness.service import ServiceProcess
from harness.sse import parse_sse
from tests.conftest import ServiceFactory
from tests.support import wait_for


@pytest.fixture
def http(service: ServiceProcess) -> httpx.Client:
    return httpx.Client(base_url=service.base_url, timeout=30)


def start(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/jobs", json={"interval": 0, "count": 3, "caller": "rest", **body})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def finished(http: httpx.Client, job_id: str) -> dict[str, Any]:
    wait_for(lambda: http.get(f"/jobs/{job_id}").json()["status"] not in ("pending", "running"))
    job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
    return job


def test_a_job_started_over_rest_runs_to_completion(http: httpx.Client) -> None:
    job = start(http, caller="runs", count=4, interval=0.01)
    assert job["status"] == "pending"
    assert job["origin"] == "rest"
    assert job["sent"] == 0
    done = finished(http, job["id"])
    assert (done["status"], done["sent"], done["count"]) == ("completed", 4, 4)
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]
    # The public shape, not the stored record: which process ran it is the service's business.
    assert "runner" not in done
    assert "runner" not in job


def test_jobs_are_listed_newest_first_filtered_and_paginated(http: httpx.Client) -> None:
    ids = [start(http, caller=f"list-{i}")["id"] for i in range(3)]
    for job_id in ids:
        finished(http, job_id)
    page = http.get("/jobs", params={"limit": 2}).json()
    assert [job["id"] for job in page["items"]] == ids[::-1][:2]
    assert page["next_offset"] == 2
    rest = http.get("/jobs", params={"limit": 2, "offset": 2}).json()
    assert rest["items"][0]["id"] == ids[0]
    completed = http.get("/jobs", params={"status": "completed", "limit": 500}).json()["items"]
    assert all(job["status"] == "completed" for job in completed)
    assert set(ids) <= {j["id"] for j in completed}
    assert http.get("/jobs", params={"status": "bogus"}).status_code == 422


def test_unknown_and_malformed_job_ids(http: httpx.Client) -> None:
    unknown = http.get("/jobs/" + "0" * 32)
    assert unknown.status_code == 404
    assert "not found" in unknown.json()["detail"]
    assert http.get("/jobs/not-a-job").status_code == 422
    assert http.delete("/jobs/" + "0" * 32).status_code == 404
    assert http.post("/jobs/" + "0" * 32 + "/cancel").status_code == 404


def test_cancel_stops_a_running_job_and_refuses_an_ended_one(http: httpx.Client) -> None:
    job = start(http, caller="cancel-me", count=1000, interval=0.01)
    wait_for(lambda: http.get(f"/jobs/{job['id']}").json()["sent"] >= 2)
    cancelled = http.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert 2 <= cancelled.json()["sent"] < 1000
    assert http.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
    again = http.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert "already ended" in again.json()["detail"]


def test_delete_forgets_a_job_running_or_ended(http: httpx.Client) -> None:
    running = start(http, caller="delete-me", count=1000, interval=0.01)
    ended = start(http, caller="delete-me-too", count=1)
    finished(http, ended["id"])
    for job in (running, ended):
        deleted = http.delete(f"/jobs/{job['id']}")
        assert (deleted.status_code, deleted.content) == (204, b"")
        assert http.get(f"/jobs/{job['id']}").status_code == 404
        assert http.get(f"/jobs/{job['id']}/events").status_code == 404
        assert http.delete(f"/jobs/{job['id']}").status_code == 404
    assert {running["id"], ended["id"]}.isdisjoint(
        j["id"] for j in http.get("/jobs", params={"limit": 500}).json()["items"]
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"interval": 0, "count": 0, "caller": "x"}, "count"),
        ({"interval": 0, "count": "3", "caller": "x"}, "count"),
        ({"interval": -1, "count": 1, "caller": "x"}, "interval"),
        ({"interval": 0, "count": 1}, "caller"),
        ({"interval": 0, "count": 1, "caller": "x", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(http: httpx.Client, body: dict[str, Any], field: str) -> None:
    response = http.post("/jobs", json=body)
    assert response.status_code == 422
    assert field in {str(part) for error in response.json()["detail"] for part in error["loc"]}


def test_a_limit_is_422_naming_the_setting(http: httpx.Client) -> None:
    response = http.post("/jobs", json={"interval": 0, "count": 10**9, "caller": "x"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "count"]
    assert "SERVICE_MAX_COUNT" in error["msg"]


def test_an_unknown_session_is_404(http: httpx.Client) -> None:
    response = http.post("/jobs", json={"interval": 0, "count": 1, "caller": "x", "session_id": "nope"})
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_too_many_jobs_is_429(start_service: ServiceFactory) -> None:
    with start_service(MAX_JOBS="1") as service, httpx.Client(base_url=service.base_url) as http:
        first = start(http, count=100, interval=1)
        response = http.post("/jobs", json={"interval": 0, "count": 1, "caller": "x"})
        assert response.status_code == 429
        assert "SERVICE_MAX_JOBS" in response.json()["detail"]
        http.post(f"/jobs/{first['id']}/cancel")


def read_events(http: httpx.Client, job_id: str, last_event_id: str | None = None) -> list[Any]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with http.stream("GET", f"/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse_sse(response.iter_lines()))


def test_the_events_stream_follows_a_job_live_and_resumes(http: httpx.Client) -> None:
    job = start(http, caller="follow", count=5, interval=0.05)
    events = read_events(http, job["id"])  # opened while the job runs: ends when it ends
    notifications, end = events[:-1], events[-1]
    assert [e.json()["index"] for e in notifications] == [1, 2, 3, 4, 5]
    assert [int(e.id) for e in notifications] == sorted(int(e.id) for e in notifications)
    assert all(e.event == "notification" for e in notifications)
    assert end.event == "end"
    assert end.json()["status"] == "completed"

    resumed = read_events(http, job["id"], last_event_id=notifications[1].id)
    assert [e.id for e in resumed[:-1]] == [e.id for e in notifications[2:]]


def test_a_malformed_last_event_id_is_422_and_another_jobs_is_400(http: httpx.Client) -> None:
    job = start(http, caller="bad-cursor", count=1)
    other = start(http, caller="other", count=1)
    finished(http, job["id"])
    finished(http, other["id"])
    foreign = read_events(http, other["id"])[0].id
    for cursor in ["garbage", "-1", "9" * 40]:
        response = http.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": cursor})
        assert response.status_code == 422, cursor
        assert response.json()["detail"][0]["loc"] == ["header", "last-event-id"]
    for cursor in [foreign, "999999999999"]:
        response = http.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": cursor})
        assert response.status_code == 400, cursor
        assert "Last-Event-ID" in response.json()["detail"]
    assert http.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": ""}).status_code == 200


def test_docs_and_openapi_describe_the_rest_api(http: httpx.Client) -> None:
    assert http.get("/docs").status_code == 200
    spec = http.get("/openapi.json").json()
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/events", "/healthz"} <= set(spec["paths"])
    assert "/mcp" not in spec["paths"]
    assert set(spec["paths"]["/jobs/{job_id}"]) == {"get", "delete"}
    assert set(spec["paths"]["/jobs/{job_id}/cancel"]) == {"post"}
    body = spec["components"]["schemas"]["JobCreate"]["properties"]
    assert (body["count"]["maximum"], body["caller"]["maxLength"], body["interval"]["maximum"]) == (100_000, 256, 3600)
    documented = set(spec["paths"]["/jobs"]["post"]["responses"])
    assert {"202", "401", "404", "413", "421", "422", "429", "431", "503"} <= documented


def test_healthz(http: httpx.Client) -> None:
    body = http.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["store"] == "sqlite"
    assert {"sessions", "running_jobs"} <= set(body)


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_finished_jobs_expire_and_say_so(start_service: ServiceFactory, store: str) -> None:
    with start_service(STORE=store, JOB_RETENTION="0.5") as service, httpx.Client(base_url=service.base_url) as http:
        long = start(http, caller="still-running", count=100, interval=0.1)
        job = start(http, caller="expires", count=2)
        first = read_events(http, job["id"])[0].id
        wait_for(lambda: http.get(f"/jobs/{job['id']}").status_code == 404, timeout=10)
        gone = http.get(f"/jobs/{job['id']}").json()["detail"]
        assert "expired" in gone
        assert "SERVICE_JOB_RETENTION" in gone
        resumed = http.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": first})
        assert (resumed.status_code, "expired" in resumed.json()["detail"]) == (404, True)
        assert http.get(f"/jobs/{'f' * 32}").json()["detail"] == f"Job {'f' * 32} not found"  # never existed
        assert http.get(f"/jobs/{long['id']}").json()["status"] == "running"  # running jobs are never purged
        health = http.get("/healthz").json()
        assert health["stored_jobs"] >= 1
        assert health["stored_events"] >= 1, health
        assert health["store_bytes"] > 0
        http.post(f"/jobs/{long['id']}/cancel")
