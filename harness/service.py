"""The real service, as a process of its own on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from service.cluster.process import free_port, stop_process

__all__ = ["REPO", "Endpoint", "OnLoopback", "ServiceProcess", "free_port", "running_service", "service_free_environ"]

REPO = Path(__file__).resolve().parent.parent


def service_free_environ() -> dict[str, str]:
    """This process's environment without its `SERVICE_*` settings: a started service gets only the ones it is given."""
    return {key: value for key, value in os.environ.items() if not key.startswith("SERVICE_")}


class Endpoint(Protocol):
    """Where clients reach the service: one process (`ServiceProcess`), or a balancer before several."""

    @property
    def port(self) -> int: ...

    @property
    def base_url(self) -> str: ...

    @property
    def mcp_url(self) -> str: ...


class OnLoopback:
    """An `Endpoint` on 127.0.0.1 at `port`: its URLs."""

    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"


@dataclass
class ServiceProcess(OnLoopback):
    """The real service, `python -m service`, under uvicorn on 127.0.0.1, configured by env vars.

    `module` swaps in another entry point that serves the same app (the conformance tests add
    fixture tools with `tests.conformance.serve`); `argv` replaces `-m module` altogether (a host
    app under plain uvicorn), whose health route is then at `health_path`.
    """

    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    module: str = "service"
    argv: tuple[str, ...] = ()
    health_path: str = "/healthz"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"service-{self.port}.log"

    def start(self, timeout: float = 20.0) -> ServiceProcess:
        env = {
            **service_free_environ(),
            "SERVICE_PORT": str(self.port),
            "SERVICE_SQLITE_PATH": str(self.workdir / "service.db"),
            "SERVICE_LOG_LEVEL": "WARNING",
            **self.env,
        }
        log = self.log_path.open("ab")
        argv = [part.format(port=self.port) for part in self.argv] if self.argv else ["-m", self.module]
        self.proc = subprocess.Popen(
            [sys.executable, *argv], cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}{self.health_path}", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"service did not start in {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the process and wait for it; return its exit code."""
        assert self.proc is not None
        return stop_process(self.proc, timeout, sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def running_service(workdir: Path, **env: str) -> Iterator[ServiceProcess]:
    service = ServiceProcess(workdir, dict(env)).start()
    try:
        yield service
    finally:
        service.stop()
