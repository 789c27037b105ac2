"""The Redis store's keys, in one place: every module names them here, so that they agree on the slots.

Keys (`<p>` is `SERVICE_REDIS_PREFIX`). What one job or one partition owns shares a hash
tag, so every script touches one slot and works on Redis Cluster too:

    <p>:ev:{<partition>}       stream: the partition's events, id `<event id>-0`, fields s (stream), d (data)
    <p>:ends:{<partition>}     sorted set: a session's ended streams, `<from> <last id> <stream>` by expiry (ms)
    <p>:job:{job:<id>}         string: the job's record (JSON)
    <p>:lease:{job:<id>}       string: `<runner>:<epoch>` of the engine that runs it, expiring unless renewed
    <p>:cancel:{job:<id>}      string: someone asked for the job to stop
    <p>:{jobs}:created         sorted set: every job, by creation time (microseconds)
    <p>:{jobs}:owner:<name>    sorted set: one principal's jobs, likewise
    <p>:{jobs}:unfinished      sorted set: pending and running jobs, by admission time
    <p>:{jobs}:session:<id>    set: one MCP session's unfinished jobs
    <p>:{jobs}:finished        sorted set: finished jobs, by the time they finished
    <p>:{jobs}:purged          string: the newest job id that retention purged
    <p>:{jobs}:shares          hash: each engine's share of `SERVICE_MAX_JOBS` (`shares`)
    <p>:{jobs}:shares:<id>     hash: each engine's share of one MCP session's `SERVICE_MAX_JOBS_PER_SESSION`
    <p>:{jobs}:alive           sorted set: engines holding shares, by when they go unless renewed (ms)
    <p>:session:{<id>}         hash: a live MCP session's replica, holder (process), owner, protocol version and
                               client (its `initialize` params)
    <p>:runner:{<runner>}      string: this process is alive, expiring unless renewed (a session's holder)
    <p>:inbox:{<replica>}      stream: notifications relayed to that replica's sessions
    <p>:cancel                 pub/sub channel: the id of a job someone asked to stop
"""

from __future__ import annotations

from service.stores.base import JOB_LOG_PREFIX

__all__ = ["Keys", "tag"]


def tag(name: str) -> str:
    """`name` as a hash tag: the part of a key Redis Cluster hashes. Braces inside would end it early."""
    return "{" + name.replace("{", "(").replace("}", ")") + "}"


class Keys:
    """The keys under one prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def events(self, partition: str) -> str:
        return f"{self.prefix}:ev:{tag(partition)}"

    def ends(self, partition: str) -> str:
        return f"{self.prefix}:ends:{tag(partition)}"

    def job(self, job_id: str, kind: str = "job") -> str:
        """One of a job's keys, all in its log's slot: `ev` is its log."""
        return f"{self.prefix}:{kind}:{tag(JOB_LOG_PREFIX + job_id)}"

    def index(self, name: str) -> str:
        return f"{self.prefix}:{{jobs}}:{name}"

    @property
    def job_indexes(self) -> tuple[str, str, str]:
        """The indexes every job is in, in the order the scripts take them: created, unfinished, finished."""
        return self.index("created"), self.index("unfinished"), self.index("finished")

    def shares(self, session_id: str | None) -> str:
        """The shares of `SERVICE_MAX_JOBS`, or of one session's `SERVICE_MAX_JOBS_PER_SESSION`."""
        return self.index("shares" if session_id is None else f"shares:{session_id}")

    def optional(self, owner: str | None, session_id: str | None) -> tuple[list[str], tuple[str, str]]:
        """The index keys of a job's owner and session, and the flags that tell the scripts which are there."""
        keys = []
        if owner is not None:
            keys.append(self.index(f"owner:{owner}"))
        if session_id is not None:
            keys.append(self.index(f"session:{session_id}"))
        return keys, ("0" if owner is None else "1", "0" if session_id is None else "1")

    def session(self, session_id: str) -> str:
        return f"{self.prefix}:session:{tag(session_id)}"

    def runner(self, runner: str) -> str:
        return f"{self.prefix}:runner:{tag(runner)}"

    def inbox(self, replica: str) -> str:
        return f"{self.prefix}:inbox:{tag(replica)}"

    @property
    def cancels(self) -> str:
        return f"{self.prefix}:cancel"
