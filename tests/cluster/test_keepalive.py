"""A tool call that stays quiet longer than a proxy's read timeout survives it, in both protocol eras.

nginx's `proxy_read_timeout` (60 s by default) and most cloud balancers close a response
that sends nothing for a while; on 2026-07-28 that cancels the call and its job. The
balancer here is the cluster's nginx configuration with a 1 s read timeout, in front of one
replica whose `: ping` comes every 0.3 s. The control, the SDK's own interval of 15 s on the
2026-07-28 path, shows the timeout really cuts a quiet stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.clients import open_raw_session, tool_call
from harness.service import OnLoopback, free_port, running_service
from service.cluster.balancer import NGINX_HINT, Replica, nginx_binary, nginx_config, start_balancer
from service.cluster.process import stop_process
from tests.support import unavailable, wait_for

READ_TIMEOUT = "proxy_read_timeout 1s;"
QUIET_CALL = {"interval": 2.5, "count": 2, "caller": "quiet"}
"""2.5 s between the two notifications, and the 2026-07-28 call asks for no logs: a silent stream."""
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
MODERN_HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/call",
    "mcp-name": "start-notification-stream",
}


@dataclass(frozen=True)
class Balancer(OnLoopback):
    port: int


@contextmanager
def behind_nginx(tmp_path: Path, ping_interval: str) -> Iterator[Balancer]:
    """One replica behind nginx whose read timeout is 1 s."""
    if nginx_binary() is None:
        unavailable(NGINX_HINT)
    (tmp_path / "replica").mkdir()
    with running_service(
        tmp_path / "replica",
        SERVICE_STORE="memory",
        SERVICE_SSE_PING_INTERVAL=ping_interval,
        SERVICE_ALLOWED_HOSTS='["127.0.0.1:*"]',
    ) as r1:
        listen = free_port()
        config = nginx_config(listen, [Replica("r1", r1.port)], tmp_path / "nginx")
        assert config.count("proxy_read_timeout 1d;") == 1  # the one thing changed
        balancer = start_balancer(
            "nginx", config.replace("proxy_read_timeout 1d;", READ_TIMEOUT), tmp_path / "nginx", tmp_path / "nginx.log"
        )
        try:
            wait_for(lambda: _answers(f"{Balancer(listen).base_url}/healthz"))
            yield Balancer(listen)
        finally:
            stop_process(balancer, timeout=5)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def call(url: str, headers: dict[str, str], body: dict[str, object]) -> tuple[int, list[str]]:
    """The status and the lines of the answer, as far as the balancer let them through."""
    lines: list[str] = []
    try:
        with httpx.stream("POST", url, headers=headers, json=body, timeout=20) as response:
            lines.extend(response.iter_lines())
            return response.status_code, lines
    except httpx.RemoteProtocolError:  # cut mid-stream
        return 200, lines


def modern_call(balancer: Balancer) -> tuple[int, list[str]]:
    body = tool_call(1, QUIET_CALL)
    body["params"]["_meta"] = MODERN_META
    return call(balancer.mcp_url, MODERN_HEADERS, body)


def legacy_call(balancer: Balancer) -> tuple[int, list[str]]:
    session = open_raw_session(balancer)
    return call(balancer.mcp_url, session, tool_call(2, QUIET_CALL))


@pytest.mark.parametrize("era", [modern_call, legacy_call], ids=["2026-07-28", "2025-11-25"])
def test_a_quiet_call_survives_a_short_read_timeout(
    tmp_path: Path, era: Callable[[Balancer], tuple[int, list[str]]]
) -> None:
    with behind_nginx(tmp_path, "0.3") as balancer:
        status, lines = era(balancer)
    assert status == 200
    assert sum(line == ": ping" for line in lines) >= 5  # 2.5 s of silence, a ping every 0.3 s
    assert '"sent":2' in lines[-2].replace(" ", ""), lines[-3:]  # the result, last


def test_without_pings_the_read_timeout_cuts_a_quiet_2026_call(tmp_path: Path) -> None:
    """The control: at the SDK's own 15 s, nothing crosses the balancer for 2.5 s."""
    with behind_nginx(tmp_path, "15") as balancer:
        status, lines = modern_call(balancer)
    assert status == 504 or not any('"result"' in line for line in lines), (status, lines)
