"""`GET /metrics`: this replica's metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.deps import MetricsDep, SettingsDep, get_principal
from service.telemetry.metrics import CONTENT_TYPE_LATEST

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="This replica's metrics (Prometheus text format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "The metrics"}},
)
async def metrics(request: Request, settings: SettingsDep, registry: MetricsDep) -> Response:
    """Authenticated like `/jobs` when authentication is on, unless `SERVICE_METRICS_PUBLIC` opens it to scrapers."""
    if not settings.metrics_public:
        await get_principal(request)  # 401 without a valid token
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)
