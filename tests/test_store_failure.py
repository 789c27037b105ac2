"""A store that fails (here: the SQLite database locked by another process) must not hang anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import httpx
import pytest
from mcp_types import TextContent

from harness.clients import mcp_client
from harness.service import running_service
from service.tools.notification_stream import TOOL_NAME

pytestmark = pytest.mark.anyio


async def test_a_locked_database_fails_the_call_clearly_and_the_service_recovers(tmp_path: Path) -> None:
    with running_service(tmp_path, SERVICE_LOG_LEVEL="CRITICAL") as service:
        lock = sqlite3.connect(tmp_path / "service.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # every write of the service now fails with "database is locked"
        try:
            async with mcp_client(service.mcp_url) as client:
                with anyio.fail_after(30):  # must end with an error, never hang
                    result = await client.call_tool(TOOL_NAME, {"interval": 0.02, "count": 500, "caller": "locked"})
                assert result.is_error
                assert isinstance(result.content[0], TextContent)
                assert "database is locked" in result.content[0].text
                async with httpx.AsyncClient(base_url=service.base_url) as http:
                    assert (await http.get("/healthz")).status_code == 200
                    listing = await http.get("/jobs")
                    assert listing.status_code == 503
                    assert "database is locked" in listing.json()["detail"]
        finally:
            lock.execute("ROLLBACK")
            lock.close()

        async with mcp_client(service.mcp_url) as client:
            recovered = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 3, "caller": "after"})
        assert not recovered.is_error
        jobs = httpx.get(f"{service.base_url}/jobs").json()["items"]
        statuses = {job["caller"]: job["status"] for job in jobs}
        assert statuses == {"after": "completed", "locked": "failed"}
