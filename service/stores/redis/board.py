"""The Redis store's `JobBoard`: admission against shares of the cluster-wide limits, leases, takeovers, cancels.

Admission needs no round trip while this engine's shares of the limits have room (`shares`):
Redis is asked only for more, and the job's lease, record and indexes go with the next batch
(`writer`). The engine renews its jobs' leases (and its shares, through `alive`) every third
of a lease. An unfinished job whose lease expired has no engine any more: the first replica
to see it takes it over (`CLAIM`), as its new owner, and goes on with it; a job it cannot go on
with (one whose client was an MCP session that only its dead replica held) is recorded as
interrupted. Every write of a job's log and record is fenced by its owner's token, so an
engine that only stood still writes nothing once another took over. A cancel is a durable
flag, read at every renewal, and a pub/sub message that usually gets there first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence

import anyio
from redis.exceptions import RedisError

from service.domain.jobs import JobRecord, JobStatus, utcnow
from service.stores.base import LOG_STREAM, Admission, Retention, Runner, StoreError
from service.stores.redis import scripts
from service.stores.redis.wire import Command
from service.stores.redis.writer import Writer, micros
from service.stores.shares import Share
from service.stores.write_behind import Signal

__all__ = ["RedisBoard"]

logger = logging.getLogger(__name__)

HANDED_OVER = "handed-over"
"""Published on the cancel channel (no job id looks like it) when an engine hands a job over."""


class RedisBoard:
    """What the engines that share one Redis agree on, as this engine (`runner`) sees it."""

    leased = True

    def __init__(
        self, writer: Writer, *, runner: str, replica: str, retention: Retention, local_sessions: Collection[str]
    ) -> None:
        self.runner = runner
        self.replica = replica or runner
        self._writer = writer
        self._keys = writer.keys
        self._tokens = writer.tokens
        self._retention = retention
        self._local_sessions = local_sessions
        """The MCP sessions this replica holds (the relay's): their shares stay while they live."""
        self._jobs_share = Share(limit=0)
        self._session_shares: dict[str, Share] = {}
        self._leaving = False
        """Set as the engine hands its jobs over: it takes none over itself any more."""
        self._beating = False
        self._look_now = Signal()
        """Set when another engine hands a job over: the next look for jobs to take over is now."""
        self.on_lapse: Callable[[], None] = lambda: None
        """Called when this process finds its heartbeat had lapsed (the relay gives its sessions up)."""

    async def admit(
        self, job: JobRecord, *, max_jobs: int, max_jobs_per_session: int, announce: bool = True
    ) -> Admission:
        """Against this engine's shares of the limits: no round trip while they have room, one to ask for more.

        The job's lease, record and indexes go with the next batch; `announce` sends it at
        once, so that every replica lists the job when this returns (a REST job's id goes to a
        client that may ask any of them next).
        """
        jobs = self._jobs_share
        jobs.limit = max_jobs
        session = self._session_share(job.session_id, max_jobs_per_session)
        try:
            while not (jobs.has_room and (session is None or session.has_room)):
                verdict = await self._ask_for_shares(jobs, job.session_id, session)
                if verdict is not Admission.ADMITTED:
                    return verdict
            queue = self._writer.writes.queue()
            jobs.take()
            if session is not None:
                session.take()
            self._trim(job.session_id)  # jobs that ended while Redis was asked left more than the spare
        finally:
            self.forget_if_idle(job.session_id)  # a share made for a job refused
        token = self._tokens[job.id] = f"{self.runner}:1"  # epoch 1: the first engine to run the job
        queue.leases[job.id] = token
        queue.jobs[job.id] = job.model_copy()
        if announce:
            try:
                await self._writer.flush()
            except StoreError:
                self._withdraw(job)
                raise
        return Admission.ADMITTED

    def _session_share(self, session_id: str | None, limit: int) -> Share | None:
        if session_id is None:
            return None
        share = self._session_shares.get(session_id)
        if share is None:
            share = self._session_shares[session_id] = Share(limit)
        share.limit = limit  # the settings of the engine asking (each admission passes them)
        return share

    async def _ask_for_shares(self, jobs: Share, session_id: str | None, session: Share | None) -> Admission:
        """One round trip (with whatever is queued) for shares with room for one more job."""
        writer = self._writer
        now = micros() // 1000
        keys = [self._keys.shares(None), self._keys.index("alive")]
        args: list[str | int] = [self.runner, now, now + writer.lease_ms, jobs.needed, jobs.wanted, jobs.limit]
        if session is not None:
            keys.append(self._keys.shares(session_id))
            args += [session.needed, session.wanted, session.limit, writer.open_ttl]
        shares = [jobs] if session is None else [jobs, session]
        for share in shares:
            share.asking += 1
        try:
            verdict, *granted = (await writer.write([scripts.GRANT.call(keys, *args)]))[0]
        finally:
            for share in shares:
                share.asking -= 1
        if verdict == 0:
            for share, slots in zip(shares, granted, strict=False):
                share.granted = slots
        return (Admission.ADMITTED, Admission.TOO_MANY_JOBS, Admission.TOO_MANY_IN_SESSION)[verdict]

    def _write_share(self, session_id: str | None, granted: int) -> None:
        key = self._keys.shares(session_id)
        self._writer.send_later(("HSET", key, self.runner, granted) if granted else ("HDEL", key, self.runner))

    def forget_if_idle(self, session_id: str | None) -> None:
        """Give a session's share back once none of its jobs runs here, unless its MCP session lives here."""
        if session_id is None or session_id in self._local_sessions:
            return
        share = self._session_shares.get(session_id)
        if share is None or share.running:
            return
        del self._session_shares[session_id]
        if share.granted:
            self._write_share(session_id, 0)

    def _withdraw(self, job: JobRecord) -> None:
        """Undo an admission whose batch Redis refused or did not answer (it would be written later, with nobody to
        run it): a batch that did not answer may still run when Redis does, so the job's keys are deleted after it."""
        queued = self._writer.writes.queued
        queued.leases.pop(job.id, None)
        queued.jobs.pop(job.id, None)
        queued.commands += self._writer.drop_commands(job.id, job)
        self._tokens.pop(job.id, None)
        self._give_back(job.session_id)

    def _give_back(self, session_id: str | None) -> None:
        self._jobs_share.running -= 1
        share = self._session_shares.get(session_id) if session_id is not None else None
        if share is not None:
            share.running -= 1
        self.forget_if_idle(session_id)
        self._trim(session_id)

    def _trim(self, session_id: str | None) -> None:
        trimmed = self._jobs_share.trim()
        if trimmed is not None:
            self._write_share(None, trimmed)
        share = self._session_shares.get(session_id) if session_id is not None else None
        if share is not None and (trimmed := share.trim()) is not None:
            self._write_share(session_id, trimmed)

    def give_up_shares(self) -> None:
        """At close: the shares go back to the other engines at once, not when this one's `alive` expires."""
        if self._jobs_share.granted:
            self._write_share(None, 0)
        for session_id, share in self._session_shares.items():
            if share.granted:
                self._write_share(session_id, 0)
        self._session_shares.clear()
        self._jobs_share = Share(limit=0)
        self._writer.writes.queued.commands.append(("ZREM", self._keys.index("alive"), self.runner))

    async def release(self, job: JobRecord) -> None:
        """The lease goes with the final record (queued); the job's place is free once it is written."""
        token = self._tokens.pop(job.id, None)
        if token is not None:
            self._writer.writes.queue().releases[job.id] = token
            self._give_back(job.session_id)

    async def request_cancel(self, job_id: str) -> None:
        flag = ("SET", self._keys.job(job_id, "cancel"), "1", "PX", round(max(self._retention.jobs, 60) * 1000))
        await self._writer.send([flag, ("PUBLISH", self._keys.cancels, job_id)])

    async def abandoned_jobs(self) -> Sequence[JobRecord]:
        """Take over every unfinished job whose lease has expired (or record it as interrupted), and return them."""
        writer, keys = self._writer, self._keys
        await writer.flush()
        cutoff = micros() - writer.lease_ms * 1000  # younger ones may still be taking their lease
        ids = [
            raw.decode()
            for raw in await writer.call(writer.redis.zrangebyscore(keys.index("unfinished"), "-inf", cutoff))
            if raw.decode() not in self._tokens
        ]
        if not ids:
            return []
        finished_at = utcnow().isoformat().replace("+00:00", "Z")
        commands = [
            scripts.CLAIM.call(
                [keys.job(job_id, kind) for kind in ("job", "lease", "ev", "owner")],
                finished_at,
                writer.finished_ttl,
                LOG_STREAM,
                self.runner,
                writer.lease_ms,
                self.replica,
            )
            for job_id in ids
        ]
        answers = await writer.send(commands)
        found, queued = [], writer.writes.queued
        for job_id, answer in zip(ids, answers, strict=True):
            if answer == b"gone":
                queued.commands.append(("ZREM", keys.index("unfinished"), job_id))
            elif answer:
                raw, token, top = answer
                job = JobRecord.model_validate_json(raw)
                writer.see(int(top.split(b"-")[0]))
                if token:  # taken over: it runs here now, counted in this engine's share
                    self._tokens[job.id] = token.decode()
                    self._jobs_share.take()
                    if (share := self._session_shares.get(job.session_id or "")) is not None:
                        share.take()
                else:
                    queued.jobs[job.id] = job  # indexed as finished at the next flush
                found.append(job)
        writer.writes.wake.set()
        return found

    async def hand_over(self, job: JobRecord, *, leaving: bool) -> None:
        """Its lease goes with the next batch; its owner stays, so that a claim bumps the epoch as after a death."""
        self._leaving = self._leaving or leaving
        token = self._tokens.pop(job.id, None)
        if token is not None:
            queued = self._writer.writes.queued
            queued.releases[job.id] = token
            # Listed as old: the others' next look takes it, however young (a young job is otherwise left
            # alone, since its lease may still be on its way).
            queued.commands.append(("ZADD", self._keys.index("unfinished"), "XX", 0, job.id))
            queued.commands.append(("PUBLISH", self._keys.cancels, HANDED_OVER))  # look now, rather than in turn
            self._writer.writes.wake.set()
            self._give_back(job.session_id)

    async def holds(self, job_id: str) -> bool:
        token = self._tokens.get(job_id)
        if token is None:
            return False
        try:
            owner = await self._writer.call(self._writer.redis.get(self._keys.job(job_id, "owner")))
        except StoreError:
            return True  # Redis cannot say; the job's writes are fenced all the same
        return owner is None or owner.decode() == token

    async def watch(self, runner: Runner) -> None:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self._listen_for_cancels, runner)
            while True:
                try:
                    await self._renew(runner)
                    for job in [] if self._leaving else await self.abandoned_jobs():
                        runner.abandoned(job)
                except StoreError as exc:
                    logger.warning("Redis store: lease renewal failed: %s", exc)
                with anyio.move_on_after(self._writer.lease_ms / 3000):
                    await self._look_now.wait()
                self._look_now.clear()

    async def _renew(self, runner: Runner) -> None:
        """This process's heartbeat (what says its sessions are held), the running jobs' leases and, if it holds
        shares, this engine's entry in `alive`: one round trip."""
        lease_ms = self._writer.lease_ms
        ids = [job_id for job_id in runner.running_job_ids() if job_id in self._tokens]
        holds_shares = bool(self._jobs_share.granted or self._session_shares)
        keys = {job_id: [self._keys.job(job_id, kind) for kind in ("lease", "cancel", "owner")] for job_id in ids}
        commands: list[Command] = [scripts.RENEW.call(keys[job_id], self._tokens[job_id], lease_ms) for job_id in ids]
        if holds_shares:
            commands.append(("ZADD", self._keys.index("alive"), micros() // 1000 + lease_ms, self.runner))
        commands.append(("SET", self._keys.runner(self.runner), "1", "PX", lease_ms, "GET"))
        # Behind the queued writes: a job admitted since the last flush has its lease only in the queue.
        *verdicts, beat = await self._writer.write(commands)
        if beat is None and self._beating:
            # This process stood still past its heartbeat: the others took it for dead, and its sessions may be
            # adopted elsewhere. It gives them all up; their clients resume where they are held now.
            logger.error("this process stood still past its heartbeat: giving up its MCP sessions")
            self.on_lapse()
        self._beating = True
        if holds_shares and verdicts.pop():  # added: taken for gone (stalled past a lease), its shares dropped
            for share in (self._jobs_share, *self._session_shares.values()):
                share.granted = 0
        for job_id, verdict in zip(ids, verdicts, strict=True):
            if verdict == 2:
                runner.stop(job_id, JobStatus.CANCELLED)
            elif verdict == 0:
                logger.error("job %s: another engine runs it now; stopping it here", job_id)
                runner.lose(job_id)

    async def _listen_for_cancels(self, runner: Runner) -> None:
        """The quick path of a cancel request; the durable flag, read at every renewal, is the sure one."""
        while True:
            try:
                pubsub = self._writer.redis.pubsub()
                async with pubsub:
                    await pubsub.subscribe(self._keys.cancels)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            job_id = message["data"].decode()
                            if job_id == HANDED_OVER:
                                self._look_now.set()
                            elif job_id in runner.running_job_ids():
                                runner.stop(job_id, JobStatus.CANCELLED)
            except (RedisError, OSError) as exc:
                logger.warning("Redis store: cancel subscription lost (%s); resubscribing", exc)
                await anyio.sleep(1)

    async def wait_for_events(self, job_id: str, after: int, within: float) -> None:
        writer = self._writer
        key = self._keys.job(job_id, "ev")
        with anyio.move_on_after(within + 1):
            block = max(1, round(within * 1000))
            await writer.call(writer.redis.xread({key: f"{after}-0"}, count=1, block=block), blocking=True)
