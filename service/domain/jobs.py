"""A job: what may be asked for (`JobSpec`) and what is kept of each run (`JobRecord`).

REST answers with its own public shape of a record (`service.api.schemas.Job`).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

__all__ = [
    "CALLER_PATTERN",
    "JOB_ID_PATTERN",
    "Caller",
    "Count",
    "Interval",
    "JobOrigin",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "McpCall",
    "SpecLimits",
    "new_job_id",
    "new_runner_id",
    "spec_model",
    "utcnow",
]

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"

# Characters a caller name may not hold: controls (NUL, ESC, CR, LF...), lone surrogates
# (they cannot be encoded, so no response could carry them) and line or paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_ALLOWED = r"[^\x00-\x1F\x7F-\x9F\u2028\u2029]"
CALLER_PATTERN = f"^{_ALLOWED}*(?!\\s){_ALLOWED}+$"
"""`_printable` as a JSON Schema pattern, for clients and fuzzers: one character that is not a space, no control."""


def _number_only(value: object) -> object:
    """An integer may be written `5` or `5.0` (JSON Schema calls both integers), never `"5"` or `true`."""
    if isinstance(value, str | bytes | bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _printable(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_string", "must not be blank")
    if not value.isprintable():  # the fast check; it also refuses some harmless format characters
        for position, char in enumerate(value):
            if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
                code = f"U+{ord(char):04X}"
                raise PydanticCustomError(
                    "control_character",
                    "must be printable text: {code} at position {position} is a control character",
                    {"code": code, "position": position},
                )
    return value


def _within(high: float, message: str, *, low: float = 0, length: bool = False) -> AfterValidator:
    """A configured limit on a value (or its length), with a message that names its setting: pydantic's would not."""

    def check(value: Any) -> Any:
        if not low <= (len(value) if length else value) <= high:
            raise PydanticCustomError("out_of_range", message)
        return value

    return AfterValidator(check)


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """The service stopped (or crashed) while the job ran."""

    @property
    def is_final(self) -> bool:
        return self not in (JobStatus.PENDING, JobStatus.RUNNING)


class JobOrigin(StrEnum):
    MCP = "mcp"
    REST = "rest"


# The shape of each argument, with the bounds no setting can change; `spec_model` adds the configured ones.
Interval = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1), BeforeValidator(_number_only)]
Caller = Annotated[str, Field(min_length=1, strict=True), AfterValidator(_printable)]


# The service validates input with `spec_model(limits)`, a subclass with the configured limits,
# so that an error names its setting and the OpenAPI schema and the tool's `inputSchema` state
# the real bounds. The docstring is what clients read there.
class JobSpec(BaseModel):
    """What to send: `count` notifications to `caller`, `interval` seconds apart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Interval
    count: Count
    caller: Caller


Spec = TypeVar("Spec", bound=JobSpec)


@dataclass(frozen=True, slots=True)
class SpecLimits:
    """The configured bounds of a job's arguments (`SERVICE_MAX_COUNT` and friends)."""

    max_count: int
    min_interval: float
    max_interval: float
    max_caller_length: int


def spec_model(limits: SpecLimits, *, base: type[Spec] = JobSpec, name: str = "JobSpec") -> type[Spec]:  # type: ignore[assignment]
    """`base` with the configured limits: checked with messages that name their setting, and in its schema."""
    low, high = max(0.0, limits.min_interval), limits.max_interval
    interval_range = f"between {low:g} and {high:g} seconds (SERVICE_MIN_INTERVAL, SERVICE_MAX_INTERVAL)"
    max_count, max_length = limits.max_count, limits.max_caller_length
    # Typed Any: mypy cannot read an `Annotated[...]` built at run time as a field type.
    interval: Any = Annotated[
        Interval,
        Field(
            description=f"Seconds between notifications, {interval_range}.",
            examples=[0.5],
            json_schema_extra={"minimum": low, "maximum": high},
        ),
        _within(high, f"must be {interval_range}", low=low),
    ]
    count: Any = Annotated[
        Count,
        Field(
            description=f"How many notifications to send, at most {max_count} (SERVICE_MAX_COUNT).",
            examples=[5],
            json_schema_extra={"maximum": max_count},
        ),
        _within(max_count, f"must be at most {max_count} (SERVICE_MAX_COUNT)"),
    ]
    caller: Any = Annotated[
        Caller,
        Field(
            description=(
                "Who asked: named in every notification. Printable text, at most "
                f"{max_length} characters (SERVICE_MAX_CALLER_LENGTH)."
            ),
            examples=["docs"],
            json_schema_extra={"maxLength": max_length, "pattern": CALLER_PATTERN},
        ),
        _within(max_length, f"must be at most {max_length} characters (SERVICE_MAX_CALLER_LENGTH)", length=True),
    ]
    return create_model(name, __base__=base, __doc__=base.__doc__, interval=interval, count=count, caller=caller)


def new_job_id() -> str:
    """A UUIDv7 in hex: a millisecond timestamp, then 74 random bits.

    Time-ordered ids put each new job at the end of the store's indexes (the job's id and
    its log's partition) instead of at a random page of each (docs/performance.md has what a
    random uuid4 cost a SQLite store).
    """
    rand = int.from_bytes(os.urandom(10), "big") >> 6
    millis = time.time_ns() // 1_000_000
    # 48-bit time | version 7 | 12 random bits | variant 0b10 | 62 random bits
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return f"{value:032x}"


def new_runner_id() -> str:
    """This process among its replicas: its host, its pid, and a random part (pids are reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class McpCall(BaseModel):
    """The 2025-11-25 `tools/call` a job answers: enough for another engine to write the rest of the call's
    stream, and its result, into the session's log when it takes the job over (the call's own replica died)."""

    model_config = ConfigDict(frozen=True)

    request_id: str | int
    progress_token: str | int | None = None
    """The call's `progressToken`, if it asked for progress notifications."""
    logs: bool = True
    """Whether the call's notifications include log messages (the session's log level lets them through)."""


class McpTask(BaseModel):
    """The MCP task a job is (`service.tasks`): its id is the job's, and what it answers is the job's end."""

    model_config = ConfigDict(frozen=True)

    era: str
    """The protocol version of the request that made it (2026-07-28 or 2025-11-25): the shapes its client reads."""
    tool: str
    """The tool called: it turns the job's end into the call's result."""
    ttl_ms: int | None
    """How long the task is kept from its creation, once it has ended (`ttlMs`; None: as long as the job)."""
    poll_ms: int
    """How often its client is asked to look (`pollIntervalMs`)."""
    resumable: bool = True
    """Whether another engine can go on with it when its own dies: this service's tool can, from the next
    notification; a host's tool cannot (its coroutine died with its process), and ends `interrupted`."""


class JobRecord(BaseModel):
    """One run of the notification stream, started over MCP or REST: what the stores keep, what the engine updates."""

    model_config = ConfigDict(validate_assignment=False)

    id: Annotated[str, Field(pattern=JOB_ID_PATTERN, examples=["3f0c9a4e8b5d4f7a9e2c1b0a9d8e7f6a"])]
    status: JobStatus
    caller: str
    interval: float
    count: int
    sent: int = 0
    origin: JobOrigin
    session_id: str | None = None
    owner: str | None = None
    runner: str | None = None
    """The engine (the process) that runs or ran it (`JobEngine.runner_id`)."""
    replica: str | None = None
    """The replica that runs or ran it, as the others call it (`SERVICE_REPLICA_ID`, else its runner id)."""
    takeovers: int = 0
    """How many times another engine took the job over from one that had died, and went on with it."""
    call: McpCall | None = None
    """The MCP call a job answers on a resumable (2025-11-25) session: it can move like a REST job."""
    task: McpTask | None = None
    """The MCP task the job is: it can move like a REST job too (its client polls for its end, from anywhere)."""
    outcome: dict[str, Any] | None = None
    """What a tool run as a task answered, for its client to fetch from any replica: `{"result": ...}` (its
    `CallToolResult`) or `{"error": ...}` (a JSON-RPC error). None for this service's tool, whose result is its
    record."""
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def new(
        cls,
        job_id: str,
        spec: JobSpec,
        origin: JobOrigin,
        session_id: str | None,
        owner: str | None,
        runner: str,
        replica: str | None = None,
        call: McpCall | None = None,
        task: McpTask | None = None,
    ) -> JobRecord:
        return cls(
            id=job_id,
            status=JobStatus.PENDING,
            caller=spec.caller,
            interval=spec.interval,
            count=spec.count,
            origin=origin,
            session_id=session_id,
            owner=owner,
            runner=runner,
            replica=replica,
            call=call,
            task=task,
            created_at=utcnow(),
        )

    @property
    def movable(self) -> bool:
        """Whether another engine can go on with the job where this one stopped: a REST job, whose followers read
        its log wherever it is written, a resumable MCP call, whose client resumes its stream from the session's
        log, or a task, whose client asks any replica for it. A 2026-07-28 call that is not a task cannot: its
        stream ends with its replica, and so does the call. (The Redis store's `CLAIM` script applies the same
        rule.)"""
        return self.origin is JobOrigin.REST or self.call is not None or (self.task is not None and self.task.resumable)

    def summary(self) -> str:
        """One sentence for a person (and for the MCP tool result)."""
        sent = f"{self.sent} of {self.count} notifications"
        if self.status is JobStatus.COMPLETED:
            return f"Sent {self.count} notifications to {self.caller}, {self.interval:g}s apart (job {self.id})."
        if self.status is JobStatus.CANCELLED:
            return f"Cancelled after {sent} to {self.caller} (job {self.id})."
        if self.status is JobStatus.INTERRUPTED:
            # A shutdown, or a lease lost: an engine that stalled past it, or died, and the job could not move (MCP).
            return (
                f"Interrupted after {sent} to {self.caller}: the service running it stopped "
                f"or lost its lease (job {self.id})."
            )
        if self.status is JobStatus.FAILED:
            return f"Failed after {sent} to {self.caller}: {self.error} (job {self.id})."
        return f"Job {self.id} is {self.status.value}: {sent} so far."
