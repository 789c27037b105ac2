from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from harness.service import ServiceProcess, running_service


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One real service with default settings (SQLite store), shared by the tests that need no special set-up."""
    with running_service(tmp_path_factory.mktemp("service")) as running:
        yield running


ServiceFactory = Callable[..., AbstractContextManager[ServiceProcess]]


@pytest.fixture
def start_service(tmp_path: Path) -> ServiceFactory:
    """Start a dedicated service with extra `SERVICE_*` settings: `with start_service(JSON_RESPONSE="true") as s:`."""

    def start(**settings: str) -> AbstractContextManager[ServiceProcess]:
        return running_service(tmp_path, **{f"SERVICE_{key}": value for key, value in settings.items()})

    return start
