"""`/metrics`: what the service did shows up, under bounded labels, and behind auth when it is on."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from service.cluster.redis_server import RedisServer
from service.settings import StoreBackend
from service.tools.notification_stream import TOOL_NAME
from tests.conftest import ServiceFactory
from tests.in_process import mcp_over_asgi, rest_client, running_app
from tests.support import wait_for

pytestmark = pytest.mark.anyio


def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(found: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(s.value for s in found if s.name == name and labels.items() <= s.labels.items())


async def scrape(http: httpx.AsyncClient, **headers: str) -> list[Sample]:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


@pytest.mark.in_process
async def test_metrics_count_requests_jobs_notifications_and_store_calls() -> None:
    async with running_app() as app, rest_client(app) as http:
        async with mcp_over_asgi(app) as client:
            await client.call_tool(TOOL_NAME, {"interval": 0, "count": 3, "caller": "legacy"})
            during = await scrape(http)
        async with mcp_over_asgi(app, mode="auto") as client:  # lands on 2026-07-28
            await client.call_tool(TOOL_NAME, {"interval": 0, "count": 2, "caller": "modern"})
        job = (await http.post("/jobs", json={"interval": 0, "count": 4, "caller": "rest"})).json()
        events = await http.get(f"/jobs/{job['id']}/events")  # to the job's end
        assert events.status_code == 200
        first = events.text.split("id: ", 2)[1].split("\n", 1)[0].strip()
        assert (await http.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": first})).status_code == 200
        assert (await http.get(f"/jobs/{job['id']}")).status_code == 200
        assert (await http.get(f"/no/such/{job['id']}")).status_code == 404
        found = await scrape(http)

    assert value(during, "mns_mcp_sessions_open") == 1
    assert value(found, "mns_mcp_requests_total", method="tools/call", era="2025-11-25") == 1
    assert value(found, "mns_mcp_requests_total", method="tools/call", era="2026-07-28") == 1
    assert value(found, "mns_mcp_requests_total", method="initialize", era="2025-11-25") == 1
    assert value(found, "mns_jobs_started_total", origin="mcp") == 2
    assert value(found, "mns_jobs_started_total", origin="rest") == 1
    assert value(found, "mns_jobs_ended_total", origin="mcp", status="completed") == 2
    assert value(found, "mns_jobs_ended_total", origin="rest", status="completed") == 1
    assert value(found, "mns_jobs_running") == 0
    assert value(found, "mns_notifications_sent_total", origin="mcp") == 5
    assert value(found, "mns_notifications_sent_total", origin="rest") == 4
    assert value(found, "mns_replays_total", kind="rest") == 1
    assert value(found, "mns_http_requests_total", method="GET", route="/jobs/{job_id}", status="200") == 1
    assert value(found, "mns_http_requests_total", method="POST", route="/jobs", status="202") == 1
    assert value(found, "mns_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(found, "mns_http_requests_total", method="POST", route="/mcp") >= 4
    assert value(found, "mns_http_request_duration_seconds_count", method="GET", route="/jobs/{job_id}/events") == 2
    assert value(found, "mns_store_operation_duration_seconds_count", backend="memory", operation="get_job") >= 3
    # Queued writes are not timed (a write-behind store would only time its queue), their errors are counted.
    assert value(found, "mns_store_operation_duration_seconds_count", operation="append") == 0
    assert value(found, "mns_store_errors_total", backend="memory", operation="append") == 0
    # No id in any label: their number stays bounded however many jobs and sessions come and go.
    assert not [s for s in found if any(job["id"] in v for v in s.labels.values())]


@pytest.mark.in_process
async def test_metrics_need_a_token_when_authentication_is_on() -> None:
    tokens = {"ops": "ops-token"}
    async with running_app(auth_tokens=tokens) as app, rest_client(app) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert value(await scrape(http, authorization="Bearer ops-token"), "mns_jobs_running") == 0
    async with running_app(auth_tokens=tokens, metrics_public=True) as app, rest_client(app) as http:
        assert value(await scrape(http), "mns_jobs_running") == 0


async def test_on_redis_each_admission_takes_a_lease(redis: RedisServer) -> None:
    redis_app = running_app(store=StoreBackend.REDIS, redis_url=redis.url, redis_prefix="metrics-leases")
    async with redis_app as app, rest_client(app) as http:
        job = (await http.post("/jobs", json={"interval": 0, "count": 2, "caller": "leased"})).json()
        assert (await http.get(f"/jobs/{job['id']}/events")).status_code == 200
        found = await scrape(http)
    assert value(found, "mns_leases_taken_total") == 1
    assert value(found, "mns_leases_expired_total") == 0
    assert value(found, "mns_store_operation_duration_seconds_count", backend="redis", operation="get_job") >= 1


def test_open_sse_streams_are_counted_while_open(start_service: ServiceFactory) -> None:
    with start_service() as service:
        job = httpx.post(f"{service.base_url}/jobs", json={"interval": 0.2, "count": 50, "caller": "s"}).json()
        with httpx.stream("GET", f"{service.base_url}/jobs/{job['id']}/events", timeout=10) as stream:
            chunks = stream.iter_raw()  # kept: a dropped iterator closes the response
            next(chunks)
            metrics = httpx.get(f"{service.base_url}/metrics").text
            assert value(samples(metrics), "mns_sse_streams_open") == 1
            assert value(samples(metrics), "mns_jobs_running") == 1
        httpx.post(f"{service.base_url}/jobs/{job['id']}/cancel")
        wait_for(lambda: value(samples(httpx.get(f"{service.base_url}/metrics").text), "mns_sse_streams_open") == 0)


@pytest.mark.in_process
async def test_metrics_can_be_turned_off() -> None:
    async with running_app(metrics=False) as app, rest_client(app) as http:
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.post("/jobs", json={"interval": 0, "count": 1, "caller": "off"})).status_code == 202
