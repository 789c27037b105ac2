"""Which events an `end_stream` covers: the span of a stream appended since its last end.

Every backend keeps events by partition, in id order, with the streams of one partition
interleaved. Dropping an ended stream's events must not walk the whole partition (a live
session may hold a long job's stream beside thousands of finished calls), so each end
records the ids of its first and last event: the backend deletes that stream's events in
that range only. The spans live in the writer's memory, one per open stream: a partition
has one writer (`service.stores.base`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ABSORB_WINDOW", "OpenStreams", "StreamEnd"]

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

    def absorb(self, later: StreamEnd) -> bool:
        """Take in a later end of the same stream, made soon after (a stream ended event by event); else False."""
        if (
            later.partition != self.partition
            or later.stream != self.stream
            or later.expires - self.expires > ABSORB_WINDOW
        ):
            return False
        self.last, self.expires = later.last, later.expires
        return True


class OpenStreams:
    """The span of every stream with events not yet ended, per partition."""

    __slots__ = ("_spans",)

    def __init__(self) -> None:
        self._spans: dict[str, dict[str, list[int]]] = {}

    def appended(self, partition: str, stream: str, event_id: int) -> None:
        streams = self._spans.get(partition)
        if streams is None:
            self._spans[partition] = {stream: [event_id, event_id]}
            return
        span = streams.get(stream)
        if span is None:
            streams[stream] = [event_id, event_id]
        else:
            span[1] = event_id

    def end(self, partition: str, stream: str, expires: float) -> StreamEnd | None:
        """The end of what `stream` has appended since its last end; None if nothing."""
        streams = self._spans.get(partition)
        span = None if streams is None else streams.pop(stream, None)
        if span is None:
            return None
        if not streams:
            del self._spans[partition]
        return StreamEnd(partition, stream, span[0], span[1], expires)

    def forget(self, partition: str) -> None:
        """The partition is ended or sealed: what it holds goes with it, or stays with it."""
        self._spans.pop(partition, None)
