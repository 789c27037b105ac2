"""A host's own FastAPI app with the service installed (`tests/host/app.py`), under plain uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typing_extensions import override

from harness.service import REPO, OnLoopback, ServiceProcess

__all__ = ["CORE_APP", "HOST_APP", "PREFIX", "HostEndpoint", "host_process", "running_host_app"]

HOST_APP = "tests.host.app:app"
"""The service installed under `PREFIX`, with the host's own authentication."""
CORE_APP = "tests.host.core_app:app"
"""The resumable MCP core alone, at `/mcp`, with the host's own `Server`; ready at `/ready`."""
PREFIX = "/notify"


class HostEndpoint(OnLoopback):
    """The service's URLs inside the host's app: under its prefix."""

    def __init__(self, process: ServiceProcess, prefix: str = PREFIX) -> None:
        self.port = process.port
        self.prefix = prefix

    @property
    @override
    def base_url(self) -> str:
        return f"{super().base_url}{self.prefix}"


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
