"""`GET /healthz`: this replica, its sessions, jobs and store, for probes and people."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from service.api.deps import EngineDep, ReplicaDep, SessionsDep, SettingsDep
from service.api.schemas import Health

__all__ = ["router"]

router = APIRouter(tags=["health"])


# HEAD too: load balancers' probes use it.
@router.api_route("/healthz", methods=["GET", "HEAD"], summary="Liveness and a few gauges")
async def healthz(engine: EngineDep, sessions: SessionsDep, settings: SettingsDep, replica: ReplicaDep) -> Health:
    stored = await engine.store_stats()
    return Health(
        replica=replica,
        store=settings.store.value,
        sessions=len(sessions),
        running_jobs=engine.running_count,
        tasks=len(asyncio.all_tasks()),
        stored_jobs=stored.jobs,
        stored_events=stored.events,
        store_bytes=stored.bytes,
    )
