"""Storage backends behind one interface (`service.stores.base.Storage`), with their board and relay.

A backend's module is imported when it is configured: a service on SQLite never loads the
Redis client (redis-py, hiredis).
"""

from __future__ import annotations

from dataclasses import dataclass

from service.settings import Settings, StoreBackend
from service.stores.base import JobBoard, Retention, SessionRelay, Storage
from service.stores.local import LocalBoard, LocalRelay

__all__ = ["Retention", "Storage", "Stores", "check_storage", "create_stores"]


@dataclass(frozen=True, slots=True)
class Stores:
    """The store, and what the processes that share it agree on through it (one process: the local ones)."""

    storage: Storage
    board: JobBoard
    relay: SessionRelay


def create_stores(settings: Settings, *, runner_id: str = "", replica: str = "") -> Stores:
    """The configured store; on Redis, `replica` names this process to the others, `runner_id` its engine."""
    retention = Retention(
        events=settings.event_retention,
        streams=settings.stream_retention,
        jobs=settings.job_retention,
        max_jobs=settings.max_stored_jobs or None,
    )
    if settings.store is StoreBackend.REDIS:
        from service.stores.redis import RedisStorage

        redis = RedisStorage(
            settings.redis_url,
            max_events_per_partition=settings.max_events_per_session,
            retention=retention,
            prefix=settings.redis_prefix,
            replica=replica,
            runner=runner_id,
            idle_horizon=settings.session_idle_timeout,
            lease_ttl=settings.lease_ttl,
        )
        return Stores(redis, redis.job_board, redis.session_relay)
    storage: Storage
    if settings.store is StoreBackend.MEMORY:
        from service.stores.memory import MemoryStorage

        storage = MemoryStorage(max_events_per_partition=settings.max_events_per_session, retention=retention)
    else:
        from service.stores.sqlite import SQLiteStorage

        storage = SQLiteStorage(
            settings.sqlite_path,
            max_events_per_partition=settings.max_events_per_session,
            retention=retention,
            flush_interval=settings.sqlite_flush_interval,
        )
    return Stores(storage, LocalBoard(storage), LocalRelay())


async def check_storage(settings: Settings) -> None:
    """Open and close the configured store once: start-up fails early, with a clear message, on a bad path."""
    async with create_stores(settings).storage:
        pass
