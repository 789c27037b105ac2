"""Helpers shared by the tests: a real service process, MCP clients, SSE parsing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import LoggingMessageNotificationParams

REPO = Path(__file__).resolve().parent.parent
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
NODE_DIR = REPO / "tests" / "node"
TOOL = "start-notification-stream"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """The real service, `python -m service`, under uvicorn on 127.0.0.1, configured by env vars.

    `module` swaps in another entry point that serves the same app (the conformance tests add
    fixture tools with `tests.conformance.serve`).
    """

    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    module: str = "service"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"service-{self.port}.log"

    def start(self, timeout: float = 20.0) -> ServiceProcess:
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("SERVICE_")},
            "SERVICE_PORT": str(self.port),
            "SERVICE_SQLITE_PATH": str(self.workdir / "service.db"),
            "SERVICE_LOG_LEVEL": "WARNING",
            **self.env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module], cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"service did not start in {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the process and wait for it; return its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def running_service(workdir: Path, **env: str) -> Iterator[ServiceProcess]:
    service = ServiceProcess(workdir, dict(env)).start()
    try:
        yield service
    finally:
        service.stop()


@dataclass
class Received:
    """What an MCP client was sent besides results: log messages and progress values, in order."""

    logs: list[Any] = field(default_factory=list)
    progress: list[float] = field(default_factory=list)
    after_log: Callable[[int], None] | None = None
    """Called with the number of log messages so far, after each one (fault tests cut the line here)."""

    async def on_log(self, params: LoggingMessageNotificationParams) -> None:
        self.logs.append(params.data)
        if self.after_log is not None:
            self.after_log(len(self.logs))

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append(progress)


@asynccontextmanager
async def mcp_client(
    url: str, *, mode: str = "legacy", headers: Mapping[str, str] | None = None, received: Received | None = None
) -> AsyncIterator[Client]:
    """The Python SDK's own client. `legacy` speaks 2025-11-25; `auto` lands on 2026-07-28."""
    received = received if received is not None else Received()
    async with httpx2.AsyncClient(headers=dict(headers or {}), timeout=httpx2.Timeout(30, read=60)) as http:
        client = Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            logging_callback=received.on_log,
            log_level="info",
        )
        async with client:
            yield client


def tool_call(request_id: int, arguments: Any, *, name: str = TOOL) -> dict[str, Any]:
    """A `tools/call` request as a client sends it (arguments as given, valid or not)."""
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def open_raw_session(service: ServiceProcess, **headers: str) -> dict[str, str]:
    """Initialize a 2025-11-25 session by hand; return the headers that address it."""
    response = httpx.post(service.mcp_url, headers={**MCP_HEADERS, **headers}, json=INITIALIZE)
    session = {
        **MCP_HEADERS,
        **headers,
        "mcp-session-id": response.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    httpx.post(service.mcp_url, headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return session


def unavailable(problem: str) -> NoReturn:
    """Skip a test whose tools are missing here; in CI (where they must be installed) fail it."""
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


def ensure_node_client() -> str | None:
    """Install the TypeScript client's packages on first use; return why it cannot run, or None."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed"
    if not (NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        install = subprocess.run(
            ["npm", "install", "--no-package-lock", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if install.returncode != 0:
            return f"npm install failed in {NODE_DIR}: {install.stderr[-2000:]}"
    return None


def run_node_client(config: Mapping[str, Any], timeout: float = 90) -> dict[str, Any]:
    """Run the TypeScript SDK client (tests/node/client.mjs) and return what it printed."""
    proc = subprocess.run(
        ["node", str(NODE_DIR / "client.mjs"), json.dumps(config)],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    lines = proc.stdout.decode().strip().splitlines()
    if not lines:
        raise AssertionError(f"node client printed nothing (exit {proc.returncode}): {proc.stderr.decode()}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Minimal SSE parser: yields each dispatched event (comments and retry fields ignored)."""
    event_id: str | None = None
    event, data = "message", list[str]()
    for line in lines:
        if line == "":
            if data:
                yield SseEvent(event_id, event, "\n".join(data))
            event_id, event, data = None, "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                event_id = value
            elif name == "event":
                event = value
            elif name == "data":
                data.append(value)


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
