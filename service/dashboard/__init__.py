"""The live jobs dashboard at `/dashboard`, and the service's front page at `/`.

Plain HTML, CSS and one JavaScript module, served from the package: no build step, no CDN.
The page reads the same REST routes as any client (`/jobs`, `/jobs/changes`,
`/jobs/{id}/events`, `/healthz`). It streams them with `fetch`, not `EventSource`, which
cannot send an `Authorization` header: with authentication on, the page asks for a token
once and keeps it in the tab's `sessionStorage`, never in a URL (URLs end up in logs).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC", "install"]

STATIC = Path(__file__).parent / "static"
ASSETS_URL = "/dashboard/assets"


def install(app: FastAPI) -> None:
    """Add `/`, `/dashboard` and the page's assets to `app`."""
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC), name="dashboard-assets")

    @app.get("/", include_in_schema=False)
    async def front_page() -> FileResponse:
        return FileResponse(STATIC / "home.html")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html")
