"""The REST API fuzzed with tools made for it: schemathesis against the live `/openapi.json`,
and hypothesis for what schemathesis never sends (non-finite numbers, lone surrogates,
bodies that are not JSON)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.service import ServiceProcess
from tests.fuzzing import NUMBERS, STRINGS, UVICORN_REFUSAL, VALUES, fuzz, fuzzed_service
from tests.support import wait_for

# A cursor that is well-formed but not one of the job's events is refused with 400, by design
# (README, "REST API"): schemathesis counts any 4xx but 404 and 409 against a valid request.
SCHEMATHESIS_CONFIG = """
[[operations]]
include-path = "/jobs/{job_id}/events"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404"]

# A stream that never ends by itself (test_the_changes_stream_checks_its_limit covers its one parameter).
[[operations]]
include-path = "/jobs/changes"
enabled = false
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with fuzzed_service(tmp_path_factory.mktemp("rest-fuzz")) as running:
        yield running


def test_schemathesis_finds_nothing_with_every_check(service: ServiceProcess, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    command = [
        *(sys.executable, "-m", "schemathesis.cli"),
        *("--config-file", str(config), "run", f"{service.base_url}/openapi.json"),
        *("--checks", "all", "--max-examples", "40", "--seed", "1", "--generation-database", "none"),
        *("--workers", "1", "--request-timeout", "10"),
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
    assert_still_serving(service)


FIELDS = st.sampled_from(["interval", "count", "caller", "session_id"]) | STRINGS
BODIES = st.one_of(
    st.dictionaries(FIELDS, VALUES, max_size=5),
    st.fixed_dictionaries(
        {"interval": NUMBERS | VALUES, "count": NUMBERS | VALUES, "caller": STRINGS | VALUES},
        optional={"session_id": STRINGS, "extra": VALUES},
    ),
    VALUES,
)


def encode(value: Any, *, overflow: bool) -> bytes:
    """JSON with NaN and Infinity as bare literals, or infinities as numbers too large for a double (1e309).

    A lone surrogate is written as its `\\u` escape (`ensure_ascii`), as a client in another language might.
    """
    text = json.dumps(value, allow_nan=True)
    if overflow:
        text = text.replace("-Infinity", "-1e999").replace("Infinity", "1e309")
    return text.encode()


@fuzz(150)
@given(body=BODIES, overflow=st.booleans(), raw=st.one_of(st.none(), st.binary(max_size=40)))
def test_generated_bodies_get_a_json_answer(
    service: ServiceProcess, body: Any, overflow: bool, raw: bytes | None
) -> None:
    content = raw if raw is not None else encode(body, overflow=overflow)
    response = httpx.post(
        f"{service.base_url}/jobs", content=content, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code < 500, (content, response.text)
    assert response.headers["content-type"].startswith("application/json"), (content, response.headers)
    answer = response.json()
    if response.status_code == 202:
        assert answer["status"] == "pending"
        assert isinstance(body, dict)
        assert all(math.isfinite(body[name]) for name in ("interval", "count"))
    else:
        assert answer["detail"], (content, answer)
        if response.status_code == 422:
            assert all(error["msg"] and error["loc"] for error in answer["detail"]), answer


@fuzz(60)
@given(
    offset=st.integers(min_value=-(2**70), max_value=2**70) | STRINGS,
    limit=st.integers(min_value=-(2**70), max_value=2**70) | STRINGS,
    cursor=STRINGS | st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
def test_generated_queries_and_cursors_get_a_json_answer(
    service: ServiceProcess, offset: Any, limit: Any, cursor: str
) -> None:
    # Sent as the bytes a client would write, lone surrogates included (as invalid UTF-8).
    query = f"offset={_quoted(offset)}&limit={_quoted(limit)}"
    listed = httpx.get(f"{service.base_url}/jobs?{query}", timeout=10)
    assert listed.status_code in (200, 422), listed.text
    assert listed.json()
    # What h11 lets a client send in a header: no line breaks or NUL, no padding.
    header = cursor.encode("utf-8", "surrogatepass").translate(None, b"\r\n\0").strip(b" \t")
    headers = {b"Last-Event-ID": header} if header else {}
    followed = httpx.get(f"{service.base_url}/jobs/{'a' * 32}/events", headers=headers, timeout=10)
    if followed.text == UVICORN_REFUSAL:
        assert followed.status_code == 400  # a control character in a header: uvicorn's parser answers itself
        return
    assert followed.status_code in (404, 422), followed.text
    assert followed.json()["detail"]


def _quoted(value: Any) -> str:
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def assert_still_serving(service: ServiceProcess) -> None:
    assert httpx.get(f"{service.base_url}/healthz", timeout=10).json()["status"] == "ok"


def test_the_service_still_serves_and_runs_nothing_left_over(service: ServiceProcess) -> None:
    assert_still_serving(service)
    wait_for(lambda: httpx.get(f"{service.base_url}/healthz").json()["running_jobs"] == 0)


@fuzz(30)
@given(limit=st.integers(min_value=-(2**70), max_value=2**70) | STRINGS)
def test_the_changes_stream_checks_its_limit(service: ServiceProcess, limit: Any) -> None:
    with httpx.stream("GET", f"{service.base_url}/jobs/changes?limit={_quoted(limit)}", timeout=10) as response:
        if response.status_code == 200:
            assert 1 <= int(str(limit)) <= 200
            # It starts at once (the jobs, then `synced`); reading one chunk is enough.
            chunks = response.iter_raw()
            assert b"event: " in next(chunks)
        else:
            assert response.status_code == 422
            response.read()
            assert response.json()["detail"]
