"""The file's tables, and the migrations an older file gets when it is opened."""

from __future__ import annotations

import sqlite3

__all__ = ["FINISHED_COLUMN", "FINISHED_INDEX", "SCHEMA", "migrate", "rename_scopes"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partition TEXT NOT NULL,
    stream TEXT NOT NULL,
    data BLOB
);
CREATE INDEX IF NOT EXISTS events_by_partition ON events (partition, id);
CREATE TABLE IF NOT EXISTS ended_partitions (
    partition TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    owner TEXT,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Databases from before retention have no `finished` column: it is added, and filled from
# each job's body, at the next open.
FINISHED_COLUMN = """
ALTER TABLE jobs ADD COLUMN finished REAL;
UPDATE jobs SET finished = (julianday(json_extract(body, '$.finished_at')) - 2440587.5) * 86400.0
    WHERE status NOT IN ('pending', 'running');
"""
FINISHED_INDEX = "CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs (finished) WHERE finished IS NOT NULL"


def rename_scopes(db: sqlite3.Connection) -> None:
    """Databases from before partitions had their name called them scopes: rename, in place."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    if "scope" not in columns:
        return
    with db:
        db.execute("ALTER TABLE events RENAME COLUMN scope TO partition")
        db.execute("DROP INDEX IF EXISTS events_by_scope")  # SCHEMA builds events_by_partition
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ended_scopes'").fetchone():
            db.execute("ALTER TABLE ended_scopes RENAME TO ended_partitions")
            db.execute("ALTER TABLE ended_partitions RENAME COLUMN scope TO partition")


def migrate(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "finished" not in columns:
        with db:
            for statement in FINISHED_COLUMN.strip().split(";\n"):
                db.execute(statement)
    db.execute(FINISHED_INDEX)
