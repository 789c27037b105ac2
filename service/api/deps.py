"""FastAPI dependencies: how a route reaches the services that `create_app` built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.jobs.engine import JobEngine
from service.mcp.sessions import SessionRegistry
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the routes use, kept on `app.state.services` by `create_app`."""

    settings: Settings
    engine: JobEngine
    sessions: SessionRegistry


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_engine(services: Annotated[Services, Depends(get_services)]) -> JobEngine:
    return services.engine


ServicesDep = Annotated[Services, Depends(get_services)]
EngineDep = Annotated[JobEngine, Depends(get_engine)]
