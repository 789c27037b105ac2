"""Redis for the tests: a standalone server, or a Redis Cluster of three masters, on free loopback ports."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness.service import free_port
from service.cluster.process import port_is_free
from service.cluster.redis_server import RedisServer

__all__ = ["cluster_port", "create_cluster", "redis_cluster", "redis_server"]

CLUSTER_SLOTS = 16384


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


def cluster_port() -> int:
    """A free port for a cluster node: its bus listens on port + 10000, so both must be free, and below 65536."""
    for _ in range(200):
        port = random.randrange(20_000, 40_000)
        if port_is_free(port) and port_is_free(port + 10_000):
            return port
    raise RuntimeError("no free pair of ports for a Redis Cluster node")


def create_cluster(servers: Sequence[RedisServer], timeout: float = 20.0) -> None:
    """Make started cluster-mode servers one Redis Cluster of masters: slots shared out, nodes met."""
    share = CLUSTER_SLOTS // len(servers)
    for index, server in enumerate(servers):
        first = index * share
        last = CLUSTER_SLOTS if index == len(servers) - 1 else first + share
        server.command("CLUSTER", "ADDSLOTS", *(str(slot) for slot in range(first, last)))
    for server in servers[1:]:
        servers[0].command("CLUSTER", "MEET", "127.0.0.1", str(server.port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all("cluster_state:ok" in server.command("CLUSTER", "INFO") for server in servers):
            known = servers[0].command("CLUSTER", "NODES").count("master")
            if known == len(servers):
                return
        time.sleep(0.1)
    raise RuntimeError("the Redis Cluster did not come up: " + servers[0].command("CLUSTER", "INFO"))
