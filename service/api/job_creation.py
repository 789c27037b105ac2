"""`POST /jobs`, made for the configured limits of a job's arguments.

Its body's model is `spec_model(limits, base=JobCreate)`: validation errors name the setting
they hit, and the OpenAPI schema states the real bounds. FastAPI reads a body's model from
the endpoint's annotation, so the endpoint is defined once the model exists, with the model
as its annotation: evaluated when the function is defined, which is why this module does not
postpone annotations (`from __future__ import annotations`), unlike the others.
"""

from fastapi import APIRouter, HTTPException, status

from service.api.deps import EngineDep, PrincipalDep, SessionsDep
from service.api.jobs import JOB_ERRORS, LINKS_FROM_A_JOB
from service.api.responses import error_responses
from service.api.schemas import Job, JobCreate
from service.domain.jobs import JobOrigin
from service.jobs.engine import TooManyJobs

__all__ = ["creation_router"]


def creation_router(job_create: type[JobCreate]) -> APIRouter:
    """`POST /jobs` with `job_create` (`spec_model(limits, base=JobCreate)`) as its body."""
    router = APIRouter(prefix="/jobs", tags=["jobs"], responses=JOB_ERRORS)

    @router.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        summary="Start a notification job",
        operation_id="create_job",
        responses={
            202: {"description": "Started", "links": LINKS_FROM_A_JOB},
            **error_responses(400, description="The body is not UTF-8"),
            **error_responses(404, description="`session_id` names no live MCP session"),
            **error_responses(429),
        },
    )
    async def create_job(
        body: job_create,  # type: ignore[valid-type]  # a class made from the settings: see the module's docstring
        engine: EngineDep,
        sessions: SessionsDep,
        principal: PrincipalDep,
    ) -> Job:
        """Start a job now and answer at once; follow it at `/jobs/{id}/events`.

        With `session_id`, its notifications are also pushed to that MCP session's standalone
        GET stream (as `notifications/message`).
        """
        spec: JobCreate = body
        sinks = []
        if spec.session_id is not None:
            sink = await sessions.sink_for(spec.session_id, owner=principal)
            if sink is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"No live MCP session with id {spec.session_id!r}")
            sinks.append(sink)
        try:
            job = await engine.start(
                spec, origin=JobOrigin.REST, session_id=spec.session_id, owner=principal, sinks=sinks
            )
        except TooManyJobs as exc:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "1"}) from None
        return Job.of(job)

    return router
