"""Writes answered from memory and written behind, in batches: the part the SQLite and Redis stores share.

Both stores queue a write (`append`, `save_job`...) and return at once, so that the hot path
never waits for the disk or the network, and write what was queued since the last batch in
one go. Both must get the same things right around that: one batch at a time; a batch that
failed goes again, ahead of what was queued since (reads still see it); and every later write
raises `StoreError` until a batch goes through, so that a failure reaches the callers instead
of growing the queue in silence. That is this module, once.

The rest differs, and stays with each store: how a batch is written (SQLite: a transaction on
a worker thread; Redis: one pipeline, which may carry commands that want an answer), when
(SQLite's flusher ticks; Redis's sleeps until a write wakes it, `wake`), what runs between
batches (each store's purge), and whether `flush` tries again while a failure is latched
(Redis does; SQLite leaves retrying to its flusher and raises at once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, Self, TypeVar

import anyio

from service.stores.base import StoreError

__all__ = ["Batch", "Signal", "WriteBehind"]


class Batch(Protocol):
    """What a store queues between two writes."""

    def __bool__(self) -> bool:
        """Whether there is anything to write."""
        ...

    def take(self, later: Self) -> None:
        """Add what was queued after this batch, which failed and goes again first."""
        ...


B = TypeVar("B", bound=Batch)
R = TypeVar("R")


class Signal:
    """A settable, clearable flag to wait on, made before any event loop runs (as `create_app` does)."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._set = False

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def clear(self) -> None:
        self._set, self._event = False, None

    async def wait(self) -> None:
        if not self._set:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()


class WriteBehind(Generic[B]):
    """One store's queue of writes, the batch on its way, and the failure that stops new writes."""

    __slots__ = ("_done", "_lock", "_new", "_taken", "_written", "failure", "queued", "wake", "writing")

    def __init__(self, new: Callable[[], B]) -> None:
        self._new = new
        self.queued = new()
        """What the next batch writes: reads merge it, and `writing`, with what the store holds."""
        self.writing = new()
        """The batch being written: out of the queue, perhaps not in the store yet."""
        self.failure: StoreError | None = None
        """Why the last batch failed, until one goes through: writes raise it meanwhile."""
        self.wake = Signal()
        """Set by `queue` and by a failure, for a flusher that sleeps until there is something to write."""
        self._lock = anyio.Lock()
        self._taken = 0
        """Batches taken for writing so far, numbered in order: one goes at a time."""
        self._written = 0
        """The number of the last batch that went through: every one before it did too, or went again in it."""
        self._done: anyio.Event | None = None

    def queue(self) -> B:
        """The queue, to add a write to; raises the latched failure instead."""
        if self.failure is not None:
            raise self.failure
        self.wake.set()
        return self.queued

    @property
    def busy(self) -> bool:
        """Whether a batch is on its way."""
        return self._lock.locked()

    async def written(self) -> None:
        """Return once what was queued before the call is written, by the batches that go anyway (no write of its
        own: many waiters, one batch); raise the failure if a batch fails meanwhile."""
        target = self._taken + 1 if self.queued else self._taken
        while self._written < target:
            self.raise_failure()
            self.wake.set()
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def write(
        self, send: Callable[[B], Awaitable[tuple[R, StoreError | None]]], idle: R, *, always: bool = False
    ) -> R:
        """Take the queue and `send` it, after any batch on its way; return what `send` answered.

        `send` writes the batch and says, besides its answer, whether the store refused it
        (an answer can outlive the batch's refusal: Redis answers a pipeline command by
        command); raising `StoreError` refuses it too. Either way the batch is queued again
        and its failure latched; a batch that goes through clears it. With nothing queued,
        this returns `idle`, and clears nothing, unless `always`.
        """
        async with self._lock:
            if not (always or self.queued):
                return idle
            batch, self.queued = self.queued, self._new()
            self.writing = batch
            self._taken += 1
            number = self._taken
            try:
                answer, refused = await send(batch)
            except StoreError as exc:
                self._failed(batch, exc)
                raise
            except BaseException:  # cancelled (a caller's deadline passed): the batch goes again, nothing latched
                self._requeue(batch)
                raise
            finally:
                self.writing = self._new()
                if self._done is not None:  # `written` waiters look again: done, or failed
                    self._done.set()
                    self._done = None
            if refused is None:
                self.failure = None
                self._written = number
            else:
                self._failed(batch, refused)
            return answer

    def _failed(self, batch: B, failure: StoreError) -> None:
        self._requeue(batch)
        self.failure = failure

    def _requeue(self, batch: B) -> None:
        batch.take(self.queued)
        self.queued = batch
        self.wake.set()
