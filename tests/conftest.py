from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from harness.redis import redis_cluster, redis_server
from harness.service import ServiceProcess, running_service
from service.cluster.redis_server import INSTALL_HINT, RedisServer, redis_server_binary
from tests.support import unavailable


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


def _need_redis() -> None:
    if redis_server_binary() is None:
        unavailable(INSTALL_HINT)


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session; each test keeps to its own key prefix (or database)."""
    _need_redis()
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real Redis Cluster of three masters; the store is given one node and finds the others."""
    _need_redis()
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as servers:
        yield servers[0]
