"""A host's own FastAPI app with the service installed (`tests/host/app.py`), under plain uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.service import REPO, ServiceProcess

__all__ = ["HOST_APP", "PREFIX", "HostEndpoint", "host_process", "running_host_app"]

HOST_APP = "tests.host.app:app"
PREFIX = "/notify"


@dataclass
class HostEndpoint:
    """The service's URLs inside the host's app: under its prefix."""

    process: ServiceProcess

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def base_url(self) -> str:
        return f"{self.process.base_url}{PREFIX}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"


def host_process(workdir: Path, *options: str, **env: str) -> ServiceProcess:
    """`uvicorn tests.host.app:app` with `options`: uvicorn's own command line, no class or command of this project."""
    argv = ("-m", "uvicorn", HOST_APP, "--app-dir", str(REPO), "--host", "127.0.0.1", "--port", "{port}", *options)
    return ServiceProcess(workdir, dict(env), argv=argv, health_path=f"{PREFIX}/healthz")


@contextmanager
def running_host_app(workdir: Path, *options: str, **env: str) -> Iterator[ServiceProcess]:
    process = host_process(workdir, *options, **env).start()
    try:
        yield process
    finally:
        process.stop()
