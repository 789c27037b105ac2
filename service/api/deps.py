"""FastAPI dependencies: what a route asks for, each by its own type.

Each is a coroutine: FastAPI runs a plain function in a thread, a hop per request for a
lookup. A route of this service may live in a host's app, next to the host's routes, or in
`create_app`'s own. Either way the `NotificationService` that installed it leaves its
`Services` in the request's scope (under `SCOPE_KEY`), so two services in one app never
mix, and nothing is kept on the host's `app.state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from starlette.types import ASGIApp, Receive, Scope, Send

from service.auth import principal_of
from service.domain.notifications import SessionDirectory
from service.jobs.engine import JobEngine
from service.settings import Settings
from service.telemetry.metrics import Metrics

__all__ = [
    "SCOPE_KEY",
    "EngineDep",
    "MetricsDep",
    "PrincipalDep",
    "ProvideServices",
    "ReplicaDep",
    "Services",
    "SessionsDep",
    "SettingsDep",
    "get_principal",
]

SCOPE_KEY = "mcp_notification_service"


@dataclass(frozen=True, slots=True)
class Services:
    """What the routes' dependencies hand out: built once by `NotificationService`."""

    settings: Settings
    engine: JobEngine
    sessions: SessionDirectory
    auth_required: bool
    replica: str
    """This process among the replicas of its store (`SERVICE_REPLICA_ID`, else its runner id)."""
    metrics: Metrics


class ProvideServices:
    """Leaves `services` in the scope of the routes it wraps, for the dependencies below."""

    def __init__(self, app: ASGIApp, *, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SCOPE_KEY] = self.services
        await self.app(scope, receive, send)


def _services(request: Request) -> Services:
    services: Services = request.scope[SCOPE_KEY]
    return services


async def get_settings(request: Request) -> Settings:
    return _services(request).settings


async def get_engine(request: Request) -> JobEngine:
    return _services(request).engine


async def get_sessions(request: Request) -> SessionDirectory:
    return _services(request).sessions


async def get_metrics(request: Request) -> Metrics:
    return _services(request).metrics


async def get_replica(request: Request) -> str:
    return _services(request).replica


async def get_principal(request: Request) -> str | None:
    """Who is calling: their principal name, or None when authentication is off. 401 otherwise."""
    principal = principal_of(request)
    if principal is None and _services(request).auth_required:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Authentication required: send the credentials this service accepts (a bearer token, by default)",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[JobEngine, Depends(get_engine)]
SessionsDep = Annotated[SessionDirectory, Depends(get_sessions)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ReplicaDep = Annotated[str, Depends(get_replica)]
PrincipalDep = Annotated[str | None, Depends(get_principal)]
