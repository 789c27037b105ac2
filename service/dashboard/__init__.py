"""The live jobs dashboard at `<prefix>/dashboard`, and the standalone service's front page.

Plain HTML, CSS and one JavaScript module, served from the package: no build step, no CDN.
The page reads the same REST routes as any client (`jobs`, `jobs/changes`,
`jobs/{id}/events`, `healthz`). It streams them with `fetch`, not `EventSource`, which
cannot send an `Authorization` header: with authentication on, the page asks for a token
once and keeps it in the tab's `sessionStorage`, never in a URL (URLs end up in logs).

Every URL in the pages is relative to a `<base>` set when a page is served: the prefix the
service is installed under, behind the proxy's root path, so the pages work wherever the
host puts them.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware import Middleware
from starlette.routing import Mount

__all__ = ["STATIC", "assets", "front_page", "router"]

STATIC = Path(__file__).parent / "static"
PAGE = "/dashboard"
ASSETS = "/dashboard/assets"

router = APIRouter(include_in_schema=False)


@router.get(PAGE)
async def dashboard(request: Request) -> HTMLResponse:
    return _page("dashboard.html", request)


async def front_page(request: Request) -> HTMLResponse:
    """The standalone service's `/`: links to the dashboard, the docs, health and metrics."""
    return _page("home.html", request)


def assets(prefix: str, *, middleware: Sequence[Middleware] = ()) -> Mount:
    """The pages' CSS and JavaScript, under `prefix`."""
    return Mount(prefix + ASSETS, StaticFiles(directory=STATIC), name="dashboard-assets", middleware=middleware)


def _page(name: str, request: Request) -> HTMLResponse:
    """The page, its URLs relative to the folder it is served from, as the browser sees it (the request's
    path includes the root path a proxy strips, as ASGI has it): `/api/notify/dashboard` -> `/api/notify/`."""
    path = request.url.path
    base = path[: path.rfind("/") + 1]
    return HTMLResponse(_read(name).replace("{base}", html.escape(base, quote=True)))


@functools.cache
def _read(name: str) -> str:
    return (STATIC / name).read_text()
