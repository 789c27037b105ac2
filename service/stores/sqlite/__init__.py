"""Durable storage in one SQLite file (WAL), the service's default.

`append` is awaited inline for every message the MCP transport sends, so it must not
touch the disk. It assigns the id and queues the row; a flusher task writes the queue
in one transaction every `flush_interval` seconds, on a worker thread. The durability
window is therefore `flush_interval`: a crash (not a clean shutdown, which flushes)
can lose the events of the last interval. A producer faster than the disk (a job with no
interval sends ~30,000 notifications a second, two rows each) would make the queue, the
window and what every read scans grow without bound: past `max_queued` rows, `append`
waits for the writer, so producers go at the disk's pace. Reads merge the rows still
queued with what the database returns, so they see every event appended before them and
never wait on a write.

If a write fails (disk full, database locked), the rows stay queued and are retried,
and `append` raises `StoreError` until a write succeeds again, so the failure reaches
the caller instead of growing memory (`service.stores.write_behind`, shared with Redis).

Retention runs on the same worker thread, between flushes: every `PURGE_INTERVAL` seconds
a step deletes at most `PURGE_BATCH` expired jobs (with their logs), `PURGE_BATCH` events of
expired sessions and `STREAM_PURGE_BATCH` events of the streams of live sessions that ended
(`end_stream`; their ends are kept in memory, as the sessions are), in one short
transaction, and the next step follows at the next flush while there is more. The cap on
finished jobs is checked every `CAP_INTERVAL` seconds, so the store may hold that many
seconds of jobs beyond it. Deleted pages go to SQLite's free list and are reused, so the
file stops growing once retention is reached. (Incremental auto-vacuum would give them back
to the file system, only for the file to grow again, at a cost on every write.)
"""

from service.stores.sqlite.storage import SQLiteStorage

__all__ = ["SQLiteStorage"]
