"""An `end_stream`: which events of a stream go, and when.

Every backend keeps events by partition, in id order, with the streams of one partition
interleaved. Dropping an ended stream's events must not walk the whole partition (a live
session may hold a long job's stream beside thousands of finished calls), so an end names
the ids of its stream's first and last event, which its writer knows (a partition has one
writer, `service.stores.base`): the backend deletes that stream's events in that range only.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from dataclasses import dataclass

__all__ = ["ABSORB_WINDOW", "StreamEnd", "queue_end"]

ABSORB_WINDOW = 1.0
"""Seconds within which ends of one stream make one record: its events then go up to this much late."""


@dataclass(slots=True)
class StreamEnd:
    """The events of `stream` in `partition` with ids from `first` to `last` go at `expires` (the backend's clock)."""

    partition: str
    stream: str
    first: int
    last: int
    expires: float


def queue_end(ends: MutableSequence[StreamEnd], end: StreamEnd) -> None:
    """Queue `end` after `ends`, by expiry; a stream ended event by event (the GET stream) takes one record."""
    if ends:
        latest = ends[-1]
        if (
            latest.partition == end.partition
            and latest.stream == end.stream
            and end.expires - latest.expires <= ABSORB_WINDOW
        ):
            latest.last, latest.expires = end.last, end.expires
            return
    ends.append(end)
