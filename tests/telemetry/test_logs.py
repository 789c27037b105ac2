"""Logs: one format for the service and uvicorn, JSON on request, and the context every line carries."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import httpx
import pytest

from service.telemetry import context
from service.telemetry.logs import PAYLOAD_LOGGERS, ContextFilter, JsonFormatter, logging_config
from tests.conftest import ServiceFactory
from tests.in_process import rest_client, running_app


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the service's loggers write, one JSON object per line, as `SERVICE_LOG_FORMAT=json` has it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter(replica="r1"))
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("service")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def parsed(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.in_process
def test_a_json_line_has_the_fields_and_the_context_known(json_lines: io.StringIO) -> None:
    token = context.job_id.set("j" * 32)
    try:
        logging.getLogger("service.test").warning("disk is %s", "full")
    finally:
        context.job_id.reset(token)
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("service.test").exception("caught", extra={"session_id": "s-1"})
    first, second = parsed(json_lines)
    assert first["timestamp"].endswith("Z")
    assert first["timestamp"][10] == "T"
    assert {k: first[k] for k in ("level", "logger", "message", "job_id", "replica")} == {
        "level": "WARNING",
        "logger": "service.test",
        "message": "disk is full",
        "job_id": "j" * 32,
        "replica": "r1",
    }
    assert "request_id" not in first  # unknown: left out, not null
    assert second["session_id"] == "s-1"
    assert "ValueError: bad" in second["exception"]


@pytest.mark.anyio
@pytest.mark.in_process
async def test_request_ids_are_kept_made_and_logged_with_the_job(json_lines: io.StringIO) -> None:
    async with running_app() as app, rest_client(app) as http:
        kept = await http.get("/healthz", headers={"X-Request-ID": "client-42"})
        made = await http.get("/healthz")
        unsound = await http.get("/healthz", headers={"X-Request-ID": "has spaces"})
        job = (
            await http.post(
                "/jobs", json={"interval": 0, "count": 2, "caller": "logs"}, headers={"X-Request-ID": "start-7"}
            )
        ).json()
        await http.get(f"/jobs/{job['id']}/events")
    assert kept.headers["x-request-id"] == "client-42"
    assert len(made.headers["x-request-id"]) == 32
    assert unsound.headers["x-request-id"] not in ("has spaces", "")
    lines = [
        line for line in parsed(json_lines) if line.get("job_id") == job["id"] and line["message"].startswith("job ")
    ]
    assert [line["message"].split(":")[0] for line in lines] == ["job started", "job ended completed"]
    assert {line["request_id"] for line in lines} == {"start-7"}  # the request that started it
    assert "2 of 2 sent" in lines[1]["message"]


@pytest.mark.in_process
def test_payload_loggers_stay_quiet_at_debug_unless_asked() -> None:
    quiet = logging_config(level="DEBUG", log_format="text")["loggers"]
    assert all(quiet[name]["level"] == "INFO" for name in PAYLOAD_LOGGERS)
    loud = logging_config(level="DEBUG", log_format="text", payloads=True)["loggers"]
    assert not set(PAYLOAD_LOGGERS) & loud.keys()


def test_every_line_of_the_service_and_uvicorn_is_json(start_service: ServiceFactory) -> None:
    with start_service(LOG_FORMAT="json", LOG_LEVEL="INFO", REPLICA_ID="r7", ACCESS_LOG="true") as service:
        response = httpx.post(
            f"{service.base_url}/jobs",
            json={"interval": 0, "count": 1, "caller": "json"},
            headers={"X-Request-ID": "e2e-1"},
        )
        assert response.status_code == 202
        httpx.get(f"{service.base_url}/jobs/{response.json()['id']}/events")
    lines = [json.loads(line) for line in service.log().splitlines() if line.strip()]
    assert {"uvicorn.error", "uvicorn.access", "service.jobs.engine"} <= {line["logger"] for line in lines}
    assert all({"timestamp", "level", "logger", "message"} <= line.keys() for line in lines)
    assert all(line["replica"] == "r7" for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access" and "POST /jobs" in line["message"]]
    assert [line.get("request_id") for line in access] == ["e2e-1"]
