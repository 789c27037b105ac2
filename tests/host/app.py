"""A host's FastAPI app, as a backend team would write one: its own routes, its own users and
authentication, its own lifespan, and the notification service added from the public names only.

`tests/host/test_host_app.py` runs it under plain `uvicorn tests.host.app:app`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, HTTPException, Request

from service import NotificationService, Settings

PREFIX = "/notify"
API_KEYS = {"alice-key": "alice", "bob-key": "bob"}
"""The host's own users, by API key: nothing the service knows of (no `SERVICE_AUTH_TOKENS`)."""

started: list[str] = []


async def who_is_calling(request: Request) -> str | None:
    """The host's authentication: its API keys, sent as bearer tokens."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return API_KEYS.get(key) if scheme.lower() == "bearer" else None


notifications = NotificationService(Settings(), authenticate=who_is_calling)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    started.append("host")  # the host's own start-up, next to the service's
    async with notifications.running():
        yield


users = APIRouter(prefix="/users", tags=["users"])


@users.get("/me")
async def me(request: Request) -> dict[str, str]:
    name = await who_is_calling(request)
    if name is None:
        raise HTTPException(401, "Who are you?")
    return {"name": name, "started": ",".join(started)}


app = FastAPI(title="A host app", lifespan=lifespan)
app.include_router(users)
notifications.install(app, prefix=PREFIX)
