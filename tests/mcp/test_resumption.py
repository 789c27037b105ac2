"""Resumption that holds: dropped connections, resumed with Last-Event-ID, lose and repeat nothing.

Each scenario cuts the TCP connection (through a proxy) at a random point of a fast stream.
`bench/resumption.py` runs the same scenarios many more times and prints the figures.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from uuid import uuid4

import httpx
import pytest

from harness import faults
from harness.clients import ensure_node_client, open_raw_session, tool_call
from harness.cluster import running_cluster
from harness.service import Endpoint, running_service
from service.cluster.balancer import CADDY_HINT, caddy_binary
from service.cluster.redis_server import RedisServer
from tests.support import unavailable

pytestmark = pytest.mark.anyio

COUNT = 300
RUNS = 3


@pytest.fixture(
    scope="module",
    params=[("sqlite", "true"), ("memory", "true"), ("sqlite", "false"), ("redis", "true"), ("cluster", "true")],
    ids=["sqlite", "memory", "sdk-path", "redis", "redis-cluster"],
)
def resumable(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """A service whose clients reconnect at once (retry: 0), reachable through a proxy on any port.

    `sdk-path` runs without the fast transport (`SERVICE_MCP_FAST_TRANSPORT=false`): resumption must
    hold on the SDK's own writer and router too. `redis` is one replica on a real
    redis-server; `redis-cluster` three, behind Caddy (`mcp-notification-service cluster`).
    """
    store, fast_transport = request.param
    env = {
        "SERVICE_MCP_FAST_TRANSPORT": fast_transport,
        "SERVICE_SSE_RETRY_MS": "0",
        "SERVICE_ALLOWED_HOSTS": '["127.0.0.1:*"]',
    }
    workdir = tmp_path_factory.mktemp("resumable")
    if store == "cluster":
        if caddy_binary() is None:
            unavailable(CADDY_HINT)
        with running_cluster(workdir, **env) as cluster:
            yield cluster
        return
    if store == "redis":
        redis: RedisServer = request.getfixturevalue("redis")
        env |= {"SERVICE_REDIS_URL": redis.url, "SERVICE_REDIS_PREFIX": f"resume{uuid4().hex[:8]}"}
    with running_service(workdir, SERVICE_STORE=store, **env) as service:
        yield service


def check(outcome: faults.Outcome) -> None:
    assert outcome.cuts >= 1, "the connection was never cut"
    assert (outcome.lost, outcome.duplicated, outcome.out_of_order) == (0, 0, 0), outcome.indices
    assert outcome.result_ok, outcome.detail


@pytest.mark.parametrize("server_notices", [True, False], ids=["server-sees-drop", "server-misses-drop"])
async def test_python_client_reconnects_by_itself(resumable: Endpoint, server_notices: bool) -> None:
    rng = random.Random(1)
    for _ in range(RUNS):
        check(await faults.python_auto(resumable.port, COUNT, server_notices=server_notices, rng=rng))


async def test_python_client_resumes_explicitly_with_its_saved_token(resumable: Endpoint) -> None:
    rng = random.Random(2)
    for delay in (0.0, 0.1):
        check(await faults.python_explicit(resumable.port, COUNT, delay=delay, rng=rng))


@pytest.mark.parametrize("server_notices", [True, False], ids=["server-sees-drop", "server-misses-drop"])
async def test_standalone_get_stream_reconnects(resumable: Endpoint, server_notices: bool) -> None:
    rng = random.Random(3)
    for _ in range(2):
        check(await faults.standalone_get(resumable.port, COUNT, server_notices=server_notices, rng=rng))


@pytest.fixture(scope="module")
def node() -> None:
    if (problem := ensure_node_client()) is not None:
        unavailable(problem)


@pytest.mark.usefixtures("node")
@pytest.mark.parametrize("server_notices", [True, False], ids=["server-sees-drop", "server-misses-drop"])
async def test_typescript_client_reconnects_by_itself(resumable: Endpoint, server_notices: bool) -> None:
    rng = random.Random(4)
    for _ in range(2):
        check(await faults.typescript_auto(resumable.port, COUNT, server_notices=server_notices, rng=rng))


@pytest.mark.usefixtures("node")
async def test_typescript_client_resumes_with_its_resumption_token(resumable: Endpoint) -> None:
    rng = random.Random(5)
    for delay in (0.0, 0.1):
        check(await faults.typescript_explicit(resumable.port, COUNT, delay=delay, rng=rng))


def call_and_collect_ids(service: Endpoint, headers: dict[str, str], count: int) -> list[str]:
    call = tool_call(1, {"interval": 0, "count": count, "caller": "raw"})
    with httpx.stream("POST", service.mcp_url, headers=headers, json=call) as response:
        return [line[4:] for line in response.iter_lines() if line.startswith("id: ")]


def test_resuming_after_the_call_ended_replays_the_rest_and_the_result(resumable: Endpoint) -> None:
    headers = open_raw_session(resumable)
    ids = call_and_collect_ids(resumable, headers, 3)  # priming, 3 notifications, the result
    assert len(ids) == 5
    with httpx.stream("GET", resumable.mcp_url, headers={**headers, "Last-Event-ID": ids[1]}) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith(("id: ", "data: "))]
    assert [line[4:] for line in lines if line.startswith("id: ")] == ids[2:]
    assert '"result"' in lines[-1]  # the stream ends with the tool result


@pytest.mark.parametrize("cursor", ["garbage", "-5", "99999999999", "1" * 40])
def test_an_unknown_last_event_id_is_a_clear_error(resumable: Endpoint, cursor: str) -> None:
    headers = open_raw_session(resumable)
    response = httpx.get(resumable.mcp_url, headers={**headers, "Last-Event-ID": cursor})
    assert response.status_code == 400
    assert "Cannot resume" in response.json()["error"]["message"]


def test_another_sessions_event_id_is_refused(resumable: Endpoint) -> None:
    """Both sessions number their requests alike; only event ids tell them apart, and they are scoped."""
    alice, bob = open_raw_session(resumable), open_raw_session(resumable)
    alice_ids = call_and_collect_ids(resumable, alice, 2)
    call_and_collect_ids(resumable, bob, 2)
    response = httpx.get(resumable.mcp_url, headers={**bob, "Last-Event-ID": alice_ids[1]})
    assert response.status_code == 400
