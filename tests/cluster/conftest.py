"""The cluster the tests of this package share, one per balancer: 3 replicas on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from harness.cluster import ClusterProcess, running_cluster
from service.cluster.balancer import CADDY_HINT, NGINX_HINT, caddy_binary, nginx_binary
from service.cluster.redis_server import INSTALL_HINT, redis_server_binary
from service.stores.base import Retention
from service.stores.redis import RedisStorage
from tests.support import unavailable

REPLICAS = 3
MAX_JOBS = 6
LEASE = 1.5


def need_cluster_binaries(balancer: str) -> None:
    if redis_server_binary() is None:
        unavailable(INSTALL_HINT)
    if balancer == "caddy" and caddy_binary() is None:
        unavailable(CADDY_HINT)
    if balancer == "nginx" and nginx_binary() is None:
        unavailable(NGINX_HINT)


@pytest.fixture(scope="package", params=["caddy", "nginx"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    balancer: str = request.param
    need_cluster_binaries(balancer)
    env = {"SERVICE_MAX_JOBS": str(MAX_JOBS), "SERVICE_LEASE_TTL": str(LEASE), "SERVICE_SHUTDOWN_TIMEOUT": "2"}
    workdir = tmp_path_factory.mktemp(f"cluster-{balancer}")
    with running_cluster(workdir, replicas=REPLICAS, balancer=balancer, **env) as running:
        yield running


@pytest.fixture
async def store(cluster: ClusterProcess) -> AsyncIterator[RedisStorage]:
    """The cluster's own store, opened from the test: what the replicas wrote, as they wrote it."""
    async with RedisStorage(
        cluster.redis_url, max_events_per_partition=100_000, retention=Retention(), prefix=f"c{cluster.port}"
    ) as opened:
        yield opened
