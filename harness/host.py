"""A host's own FastAPI app with the service installed (`tests/host/app.py`), under plain uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.service import REPO, ServiceProcess

__all__ = ["CORE_APP", "HOST_APP", "PREFIX", "HostEndpoint", "host_process", "running_host_app"]

HOST_APP = "tests.host.app:app"
"""The service installed under `PREFIX`, with the host's own authentication."""
CORE_APP = "tests.host.core_app:app"
"""The resumable MCP core alone, at `/mcp`, with the host's own `Server`; ready at `/ready`."""
PREFIX = "/notify"


@dataclass
class HostEndpoint:
    """The service's URLs inside the host's app: under its prefix."""

    process: ServiceProcess
    prefix: str = PREFIX

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def base_url(self) -> str:
        return f"{self.process.base_url}{self.prefix}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"


def host_process(workdir: Path, *options: str, app: str = HOST_APP, **env: str) -> ServiceProcess:
    """`uvicorn <app>` with `options`: uvicorn's own command line, no class or command of this project."""
    argv = ("-m", "uvicorn", app, "--app-dir", str(REPO), "--host", "127.0.0.1", "--port", "{port}", *options)
    ready = f"{PREFIX}/healthz" if app == HOST_APP else "/ready"
    return ServiceProcess(workdir, dict(env), argv=argv, health_path=ready)


@contextmanager
def running_host_app(workdir: Path, *options: str, app: str = HOST_APP, **env: str) -> Iterator[ServiceProcess]:
    process = host_process(workdir, *options, app=app, **env).start()
    try:
        yield process
    finally:
        process.stop()
