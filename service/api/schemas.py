"""Request and response bodies of the REST API: the public shapes, apart from what the stores keep."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from service.domain.jobs import JOB_ID_PATTERN, JobOrigin, JobRecord, JobSpec, JobStatus

__all__ = ["ErrorBody", "Health", "Job", "JobCreate", "JobPage"]

SESSION_ID_PATTERN = r"^[\x21-\x7e]+$"
"""What the MCP spec allows in a session id: visible ASCII."""


class JobCreate(JobSpec):
    """A job to start; with `session_id`, its notifications also go to that MCP session's GET stream."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [{"interval": 0.5, "count": 5, "caller": "docs"}]},
    )

    session_id: Annotated[
        str | None,
        Field(
            max_length=128,
            pattern=SESSION_ID_PATTERN,
            description="A live MCP session (its Mcp-Session-Id) to push the notifications to.",
        ),
    ] = None


class JobTask(BaseModel):
    """The MCP task a job is, as its client's protocol made it."""

    era: str = Field(description="The protocol version of the request that made it: 2026-07-28 or 2025-11-25.")
    tool: str
    ttl_ms: int | None = Field(description="How long the task is kept from its creation, once it has ended.")


class Job(BaseModel):
    """A job as clients see it: its record, less the service's own bookkeeping (which process runs it)."""

    id: Annotated[str, Field(pattern=JOB_ID_PATTERN, examples=["019ad6b1c3f37a2e9e1c8b6a3f2d1e0c"])]
    status: JobStatus
    caller: str
    interval: float
    count: int
    sent: int
    origin: JobOrigin
    session_id: str | None
    owner: str | None
    replica: str | None = Field(description="The replica that runs it now, or ran it last.")
    takeovers: int = Field(description="How many times a replica took it over from one that had died, and went on.")
    task: JobTask | None = Field(None, description="The MCP task this job is (its id is the task's), if it is one.")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, record: JobRecord) -> Job:
        return cls.model_validate(record, from_attributes=True)


class JobPage(BaseModel):
    items: list[Job]
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last page.")


class Health(BaseModel):
    status: str = "ok"
    replica: str = Field(description="This replica: SERVICE_REPLICA_ID, else the host, pid and a random part.")
    store: str
    sessions: int = Field(description="Live MCP sessions (2025-era, with an Mcp-Session-Id).")
    running_jobs: int
    tasks: int = Field(description="Tasks on the event loop: a leak shows here first.")
    stored_jobs: int = Field(description="Job records in the store, running and finished (retention bounds them).")
    stored_events: int = Field(description="Events in the store: sessions' and jobs' logs.")
    store_bytes: int = Field(description="The store's size: its files on disk, or its payloads in memory.")


class ErrorBody(BaseModel):
    detail: str = Field(description="What was wrong, for a person to read.")
