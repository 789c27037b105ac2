"""The package's layers: no module imports one above its own (`scripts/import_graph.py` draws the graph)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scripts import import_graph

pytestmark = pytest.mark.in_process


def test_no_module_reaches_back_up_a_layer() -> None:
    assert import_graph.violations(import_graph.graph()) == []


def test_the_check_sees_an_import_that_reaches_up() -> None:
    edges = {"service.stores.sqlite": {"service.jobs.engine"}, "service.jobs.engine": {"service.stores.base"}}
    assert import_graph.violations(edges) == ["service.stores.sqlite (layer 2) imports service.jobs.engine (layer 4)"]


@pytest.mark.parametrize(("store", "loaded"), [("sqlite", False), ("redis", True)])
def test_the_redis_client_is_loaded_only_for_a_redis_store(store: str, loaded: bool) -> None:
    """A backend is imported when it is configured: the app alone, on SQLite, loads neither redis-py nor hiredis."""
    probe = (
        "import sys; from service.app import create_app; from service.settings import Settings; "
        f"create_app(Settings(store={store!r})); "
        "print(any(name.split('.')[0] in ('redis', 'hiredis') for name in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert found.stdout.strip() == str(loaded)


LIGHT = {
    "import service": "import service",
    "import service.mcp": "import service.mcp",
    "a host app": (
        "from fastapi import FastAPI; from service import NotificationService, Settings; "
        "NotificationService(Settings(store='sqlite', sqlite_path=':memory:')).install(FastAPI(), '/notify')"
    ),
}


@pytest.mark.parametrize("probe", LIGHT.values(), ids=LIGHT.keys())
def test_the_core_loads_neither_redis_nor_opentelemetrys_sdk(probe: str) -> None:
    """What the `redis` and `otel` extras install is loaded only when configured. OpenTelemetry's API is the
    MCP SDK's own dependency (its server imports it), so only its SDK and exporter are the service's to spare."""
    check = (
        f"import sys; {probe}; "
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'redis', 'hiredis'}), "
        "sorted(name for name in sys.modules if name.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))))"
    )
    found = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60)
    assert found.stdout.strip() == "[] []"


def test_importing_the_package_loads_only_its_version() -> None:
    """`import service` costs nothing: each public name is imported on first use."""
    check = "import sys, service; print(sorted(name for name in sys.modules if name.startswith('service')))"
    found = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60)
    assert found.stdout.strip() == "['service', 'service.version']"
