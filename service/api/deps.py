"""FastAPI dependencies: how a route reaches the services that `create_app` built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from service.auth import principal_of
from service.domain.notifications import SessionDirectory
from service.jobs.engine import JobEngine
from service.settings import Settings
from service.telemetry.metrics import Metrics

__all__ = ["EngineDep", "PrincipalDep", "Services", "ServicesDep"]


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the routes use, kept on `app.state.services` by `create_app`."""

    settings: Settings
    engine: JobEngine
    sessions: SessionDirectory
    auth_required: bool
    replica: str
    """This process among the replicas of its store (`SERVICE_REPLICA_ID`, else its runner id)."""
    metrics: Metrics


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_engine(services: Annotated[Services, Depends(get_services)]) -> JobEngine:
    return services.engine


def get_principal(request: Request, services: Annotated[Services, Depends(get_services)]) -> str | None:
    """Who is calling: their principal name, or None when authentication is off. 401 otherwise."""
    principal = principal_of(request)
    if principal is None and services.auth_required:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Authentication required: send 'Authorization: Bearer <token>' with a configured token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
EngineDep = Annotated[JobEngine, Depends(get_engine)]
PrincipalDep = Annotated[str | None, Depends(get_principal)]
