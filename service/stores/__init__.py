"""Storage backends behind one interface (`service.stores.base.Storage`)."""

from __future__ import annotations

from service.settings import Settings, StoreBackend
from service.stores.base import Retention, Storage
from service.stores.memory import MemoryStorage
from service.stores.sqlite import SQLiteStorage

__all__ = ["MemoryStorage", "Retention", "SQLiteStorage", "Storage", "check_storage", "create_storage"]


def create_storage(settings: Settings) -> Storage:
    retention = Retention(
        events=settings.event_retention,
        jobs=settings.job_retention,
        max_jobs=settings.max_stored_jobs or None,
    )
    if settings.store is StoreBackend.MEMORY:
        return MemoryStorage(max_events_per_partition=settings.max_events_per_session, retention=retention)
    return SQLiteStorage(
        settings.sqlite_path,
        max_events_per_partition=settings.max_events_per_session,
        retention=retention,
        flush_interval=settings.sqlite_flush_interval,
    )


async def check_storage(settings: Settings) -> None:
    """Open and close the configured store once: start-up fails early, with a clear message, on a bad path."""
    async with create_storage(settings):
        pass
