"""The benchmark's servers as processes: which ones, how each is started (pinned to core 0),
and the load generator's runs against them (from core 1)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from harness.service import free_port, service_free_environ
from service.cluster.process import stop_process

ROOT = Path(__file__).resolve().parent.parent


SERVER_CORE = 0


LOADGEN_CORE = 1


SERVICE_SQLITE = "service-sqlite"


SERVICE_MEMORY = "service-memory"


EXAMPLE = "example"


BARE = "bare"


# Peers (#18): the TypeScript SDK's server on its example's design (tests/node/server.mjs, run by Node),
# and fastmcp (bench/fastmcp_server.py).
TS_SDK = "ts-sdk"


FASTMCP = "fastmcp"


PEERS = (TS_SDK, FASTMCP)


MCP_SERVERS = (SERVICE_SQLITE, SERVICE_MEMORY, EXAMPLE, *PEERS)


# fastmcp stores about 2,700 events/s: filling a history of 1M events would take it over six minutes.
REPLAY_SERVERS = (SERVICE_SQLITE, SERVICE_MEMORY, EXAMPLE, TS_SDK)
# The most events a server's history is filled to (the stages past it are skipped: with the default stages,
# the TypeScript SDK's server stops at 100k). It holds every event in its process: filling it to 1M events did
# not end in 15 minutes (2.5 GB by then); to 100k took 16 s.
REPLAY_MAX_STORED = {TS_SDK: 200_000}


# Measured for tool calls at 1 session only, where the SDK sets the limit (docs/performance.md):
SERVICE_INLINE = "service-inline"  # the service, each request handled in its POST's task (bench/inline_dispatch.py)


SDK_FLOOR = "sdk-floor"  # the SDK's least work per call (bench/example_server.py --floor)


SDK_LIMIT_SERVERS = (SERVICE_INLINE, SDK_FLOOR)


EVERY_SERVER = (*MCP_SERVERS, BARE, *SDK_LIMIT_SERVERS)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Processes


def pin(core: int) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def server_command(
    name: str,
    port: int,
    workdir: Path,
    *,
    code: Path | None = None,
    replay: bool = False,
    settings: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    env = service_free_environ()
    # The snapshot of service/ (see `freeze_code`) comes first, so that edits made to the working tree
    # while the benchmark runs do not change what later rounds measure.
    env["PYTHONPATH"] = os.pathsep.join([*([str(code)] if code else []), str(ROOT)])
    if name in (SERVICE_SQLITE, SERVICE_MEMORY, SERVICE_INLINE):
        env |= {
            "SERVICE_PORT": str(port),
            "SERVICE_STORE": "memory" if name == SERVICE_MEMORY else "sqlite",
            "SERVICE_SQLITE_PATH": str(workdir / "service.db"),
        }
        if replay:
            env |= {"SERVICE_MAX_COUNT": "1000000", "SERVICE_MAX_EVENTS_PER_SESSION": "2000000"}
        env |= settings or {}
        return [sys.executable, "-m", "bench.inline_dispatch" if name == SERVICE_INLINE else "service"], env
    if name in (EXAMPLE, SDK_FLOOR):
        floor = ["--floor"] if name == SDK_FLOOR else []
        return [sys.executable, "-m", "bench.example_server", "--port", str(port), *floor], env
    if name == BARE:
        return [sys.executable, "-m", "bench.bare_server", "--port", str(port)], env
    if name == FASTMCP:
        return [sys.executable, "-m", "bench.fastmcp_server", "--port", str(port)], env
    if name == TS_SDK:
        node = shutil.which("node")
        if node is None:
            raise FileNotFoundError("no node: the TypeScript SDK's server needs Node.js")
        # The example's store replays a burst out of order (tests/node/server.mjs).
        store = ["--event-store", "ordered"] if replay else []
        return [node, str(ROOT / "tests" / "node" / "server.mjs"), "--port", str(port), *store], env
    raise ValueError(name)


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[Any]
    workdir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def native_modules(self) -> list[str]:
        """Which of uvloop and httptools the process has loaded (read from its memory map)."""
        try:
            maps = Path(f"/proc/{self.pid}/maps").read_text()
        except OSError:
            return []
        return [name for name in ("uvloop", "httptools") if f"/{name}/" in maps]


@contextlib.contextmanager
def running(
    name: str, *, code: Path | None = None, replay: bool = False, settings: dict[str, str] | None = None
) -> Iterator[Server]:
    """`name` started from `code` (a frozen copy of service/, `bench.run.freeze_code`), else from this tree.

    `replay` sets it up for the replay rows: room for their history, and a store that replays it in order.

    `settings` (`SERVICE_*` variables) go to the service's processes: `SERVICE_STORE=redis`, say.
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        workdir = Path(tmp)
        argv, env = server_command(name, port, workdir, code=code, replay=replay, settings=settings)
        stderr = (workdir / "server.log").open("wb")
        proc = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=pin(SERVER_CORE)
        )
        server = Server(name, port, proc, workdir)
        try:
            _wait_ready(server)
            yield server
        finally:
            stop_process(proc, timeout=20)
            stderr.close()


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited at start-up:\n{_tail(server)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not start listening within {timeout:g}s")


def _tail(server: Server, lines: int = 15) -> str:
    try:
        return "\n".join((server.workdir / "server.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def loadgen(
    server: Server, scenario: str, *args: str, timeout: float, server_pid: int | None = None
) -> dict[str, Any] | None:
    """Run one load-generator scenario against `server`; None (and a message) if it failed.

    `server_pid`: whose CPU to measure, when `server.proc` is not the process that serves (a cluster's supervisor).
    """
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        scenario,
        "--port",
        str(server.port),
        "--server-pid",
        str(server_pid or server.pid),
    ]
    try:
        done = subprocess.run(
            [*argv, *args],
            cwd=ROOT,
            capture_output=True,
            timeout=timeout,
            preexec_fn=pin(LOADGEN_CORE),
            check=False,
        )
    except subprocess.TimeoutExpired:
        log(f"  ! {server.name} {scenario} {' '.join(args)}: timed out after {timeout:g}s")
        return None
    if done.returncode != 0 or not done.stdout.strip():
        err = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        log(f"  ! {server.name} {scenario} {' '.join(args)}: failed ({'; '.join(err)})")
        if not server.alive():
            log(f"  ! {server.name} is gone (exit {server.proc.returncode}):\n{_tail(server)}")
        return None
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def wait_quiet(limit: float, threshold: float = 0.25) -> float:
    """Wait (up to `limit` s) until the machine is nearly idle; return the busy fraction last seen (in cores)."""
    if limit <= 0:
        return float("nan")
    deadline = time.monotonic() + limit
    busy = 0.0
    while True:
        busy = float(sum(psutil.cpu_percent(interval=0.5, percpu=True))) / 100
        if busy <= threshold or time.monotonic() >= deadline:
            return busy
        time.sleep(0.5)
