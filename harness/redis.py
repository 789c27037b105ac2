"""Redis for the tests: a standalone server, or a Redis Cluster of three masters, on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness.service import free_port
from service.cluster.redis_server import RedisServer, cluster_port, create_cluster

__all__ = ["redis_cluster", "redis_server"]


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir, free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def redis_cluster(workdir: Path, masters: int = 3) -> Iterator[list[RedisServer]]:
    """`masters` cluster-mode servers sharing the slots: connect to any one of them."""
    with ExitStack() as stack:
        servers = []
        for index in range(masters):
            server = RedisServer(workdir / f"node-{index}", cluster_port(), cluster=True).start()
            stack.callback(server.stop)
            servers.append(server)
        create_cluster(servers)
        yield servers
