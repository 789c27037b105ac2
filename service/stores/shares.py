"""An engine's share of a limit that engines share: it admits jobs against it without asking anyone.

A limit of N running jobs shared by several engines (`SERVICE_MAX_JOBS` across replicas, or
one MCP session's `SERVICE_MAX_JOBS_PER_SESSION`) is split into shares that the shared store
grants, whose sum never exceeds N. An engine runs at most its share at once, so its
admissions need no round trip until its share is used up; then it asks for more. A share is
kept a little above the jobs running (`spare`), so that the next job does not have to ask,
and shrinks back when jobs end, so that other engines can have the rest. A small limit keeps
no spare at all: every admission asks, and the limit is exact, as a single process keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_SPARE", "Share"]

MAX_SPARE = 16
"""The most slots a share keeps beyond its running jobs; a limit keeps at most one sixteenth of itself spare."""


@dataclass(slots=True)
class Share:
    limit: int
    granted: int = 0
    """The slots the store granted this engine."""
    running: int = 0
    asking: int = 0
    """Asks for a new share in flight: their answer sets `granted`, so it is not trimmed meanwhile."""

    @property
    def spare(self) -> int:
        return min(MAX_SPARE, self.limit // 16)

    @property
    def has_room(self) -> bool:
        return self.running < self.granted

    @property
    def needed(self) -> int:
        """The least share that admits one more job."""
        return self.running + 1

    @property
    def wanted(self) -> int:
        """The share to ask for when there is no room: one more job and the spare, within the limit."""
        return max(self.granted, min(self.limit, self.needed + self.spare))

    def take(self) -> None:
        self.running += 1

    def trim(self) -> int | None:
        """The share cut to the running jobs and the spare, if it was above; None if it keeps its size."""
        if self.asking or self.granted <= self.running + self.spare:
            return None
        self.granted = self.running + self.spare
        return self.granted
