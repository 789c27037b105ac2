"""The SQL each write and retention step runs, as functions of a connection: called on the store's worker thread.

Each purge is bounded (a batch of ids per statement), so one step is one short transaction.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Iterable, Sequence

from service.stores.base import JOB_LOG_PREFIX, job_partition
from service.stores.stream_ends import StreamEnd

__all__ = [
    "PURGE_BATCH",
    "STREAM_PURGE_BATCH",
    "WRITE_CHUNK",
    "delete_job",
    "drop_ended_streams",
    "end_orphaned_partitions",
    "execute_in_chunks",
    "purge_ended_partitions",
    "purge_jobs",
]

PURGE_BATCH = 256
"""Jobs, and session events, deleted at most by one purge step (one transaction)."""
STREAM_PURGE_BATCH = 1024
"""Events of ended streams deleted at most by one purge step: a busy session ends a stream per call."""
WRITE_CHUNK = 32
"""Rows per `executemany` call in a flush (see `statements.execute_in_chunks`)."""


def execute_in_chunks(db: sqlite3.Connection, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
    """`executemany` in chunks, offering the core (and the GIL) to the event loop's thread between them.

    Where the loop and this thread share one core, a flush written in one go delays the
    request in flight by all of it (about 1.5 ms at 800 calls/s): that was the p99 of a
    lightly loaded server. In chunks, the loop takes its turn between them when it has
    work, and the flush goes straight on when it has none.
    """
    remaining = iter(rows)
    while chunk := list(itertools.islice(remaining, WRITE_CHUNK)):
        db.executemany(sql, chunk)
        if hasattr(os, "sched_yield"):
            os.sched_yield()


def end_orphaned_partitions(db: sqlite3.Connection, *, expires_at: float) -> None:
    """Sessions live in one process: any session partition found at open was left by one that crashed."""
    with db:
        db.execute(
            "INSERT OR IGNORE INTO ended_partitions (partition, expires_at)"
            " SELECT DISTINCT partition, ? FROM events WHERE partition NOT LIKE ? || '%'",
            (expires_at, JOB_LOG_PREFIX),
        )


def delete_job(db: sqlite3.Connection, job_id: str) -> int:
    """Delete one job and its log; return the events deleted."""
    with db:
        events = db.execute("DELETE FROM events WHERE partition = ?", (job_partition(job_id),)).rowcount
        db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    return events


# The jobs one purge step takes: the oldest finished, expired ones (or, beyond the cap, the oldest
# at all). Each statement below runs whole inside SQLite, in one call that releases the GIL once:
# deleting job by job (`executemany`) handed the GIL back and forth with the event loop's thread
# hundreds of times a step, and that cost the loop more than the deletes cost the writer.
_EXPIRED = "SELECT id FROM jobs WHERE finished IS NOT NULL AND finished <= :before ORDER BY finished LIMIT :limit"
_OLDEST = "SELECT id FROM jobs WHERE finished IS NOT NULL ORDER BY finished LIMIT :limit"


def purge_jobs(db: sqlite3.Connection, *, before: float, cap: int | None) -> tuple[int, int, str]:
    """Up to `PURGE_BATCH` finished jobs that expired, or are the oldest beyond the cap, with their logs.

    Returns the jobs and the events deleted, and the newest id among the jobs.
    """
    taken, batch = _EXPIRED, {"before": before, "limit": PURGE_BATCH}
    if cap is not None:
        (finished,) = db.execute("SELECT COUNT(*) FROM jobs WHERE finished IS NOT NULL").fetchone()
        if finished > cap:  # the oldest beyond the cap go, expired or not (the expired are older still)
            taken, batch = _OLDEST, {"limit": min(PURGE_BATCH, finished - cap)}
    (newest,) = db.execute(f"SELECT max(id) FROM ({taken})", batch).fetchone()
    if newest is None:
        return 0, 0, ""
    events = db.execute(
        f"DELETE FROM events WHERE partition IN (SELECT '{JOB_LOG_PREFIX}' || id FROM ({taken}))", batch
    ).rowcount
    jobs = db.execute(f"DELETE FROM jobs WHERE id IN ({taken})", batch).rowcount
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('purged_through', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        (newest,),
    )
    return jobs, events, str(newest)


def purge_ended_partitions(db: sqlite3.Connection, now: float) -> int:
    """Up to `PURGE_BATCH` events of sessions whose retention ran out; a partition is forgotten once it is empty."""
    # CROSS JOIN makes the (few) ended partitions the outer loop: left to itself, SQLite scanned
    # the whole events index for ended partitions, at every step.
    removed = db.execute(
        "DELETE FROM events WHERE id IN (SELECT events.id FROM ended_partitions CROSS JOIN events"
        " ON events.partition = ended_partitions.partition WHERE ended_partitions.expires_at <= ? LIMIT ?)",
        (now, PURGE_BATCH),
    ).rowcount
    if removed < PURGE_BATCH:
        db.execute(
            "DELETE FROM ended_partitions WHERE expires_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM events WHERE events.partition = ended_partitions.partition)",
            (now,),
        )
    return removed


def drop_ended_streams(db: sqlite3.Connection, ends: Sequence[StreamEnd]) -> tuple[int, int]:
    """Up to `STREAM_PURGE_BATCH` events of these ended streams; returns them, and how many ends went whole.

    Each end names its stream's first and last id, so a delete reads that range of its
    partition's index, never the whole partition (a long job's stream may sit beside it).
    """
    budget = STREAM_PURGE_BATCH
    for done, end in enumerate(ends):
        budget -= db.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM events"
            " WHERE partition = ? AND id BETWEEN ? AND ? AND stream = ? LIMIT ?)",
            (end.partition, end.first, end.last, end.stream, budget),
        ).rowcount
        if budget == 0:
            return STREAM_PURGE_BATCH, done  # this one may have more: it goes again
    return STREAM_PURGE_BATCH - budget, len(ends)
