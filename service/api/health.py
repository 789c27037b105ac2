from __future__ import annotations

import asyncio

from fastapi import APIRouter

from service.api.deps import ServicesDep
from service.api.schemas import Health

__all__ = ["router"]

router = APIRouter(tags=["health"])


# HEAD too: load balancers' probes use it.
@router.api_route("/healthz", methods=["GET", "HEAD"], summary="Liveness and a few gauges")
async def healthz(services: ServicesDep) -> Health:
    stored = await services.engine.store_stats()
    return Health(
        replica=services.replica,
        store=services.settings.store.value,
        sessions=len(services.sessions),
        running_jobs=services.engine.running_count,
        tasks=len(asyncio.all_tasks()),
        stored_jobs=stored.jobs,
        stored_events=stored.events,
        store_bytes=stored.bytes,
    )
