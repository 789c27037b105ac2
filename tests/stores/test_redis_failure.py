"""The Redis store when Redis fails under it: a real redis-server, made to forget and to drop its clients."""

from __future__ import annotations

from uuid import uuid4

import anyio
import pytest

from service.cluster.redis_server import RedisServer
from service.stores.base import Retention, StoredEvent, StoreError
from service.stores.redis import RedisStorage

pytestmark = pytest.mark.anyio


async def test_a_redis_that_restarted_without_its_scripts_is_written_to_again(redis: RedisServer) -> None:
    """A restart forgets the scripts and drops every connection: the batch that meets it (NOSCRIPT, and a
    reload on a dead connection) goes again once Redis answers, and the store's writer keeps running."""
    partition = f"session:{uuid4().hex}"
    async with RedisStorage(
        redis.url, max_events_per_partition=100, retention=Retention(), prefix=f"t{uuid4().hex[:8]}"
    ) as storage:
        first = await storage.append(partition, "s", b"before")
        await storage.flush()
        redis.command("SCRIPT", "FLUSH")
        redis.command("CLIENT", "KILL", "TYPE", "normal")  # the store's connections, as a restart drops them
        second = await storage.append(partition, "s", b"after")
        with anyio.fail_after(10):
            while [event.id for event in await _durable(storage, partition)] != [first, second]:
                await anyio.sleep(0.1)
        third = await storage.append(partition, "s", b"later")  # the writer still writes on its own
        with anyio.fail_after(10):
            while len(await _durable(storage, partition)) < 3:
                await anyio.sleep(0.1)
        assert [event.data for event in await _durable(storage, partition)] == [b"before", b"after", b"later"]
        assert third > second


async def _durable(storage: RedisStorage, partition: str) -> list[StoredEvent]:
    try:
        return list(await storage.read(partition, "s"))
    except StoreError:  # Redis is still coming back: read again
        return []
