"""Fault scenarios shared by the resumption tests and `bench/resumption.py`.

Each scenario runs one notification job through a `CuttingProxy`, drops the connection at
a random point, lets the client resume with `Last-Event-ID`, and reports what arrived.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import uuid4

import anyio
import httpx
from mcp.shared.message import ClientMessageMetadata
from mcp_types import CallToolRequest, CallToolRequestParams, CallToolResult

from harness.clients import Received, mcp_client, run_node_client
from harness.proxy import CuttingProxy, cutting_proxy
from service.tools.notification_stream import TOOL_NAME

INDEX = re.compile(r"Notification (\d+)/")


@dataclass
class Outcome:
    """What one run delivered, judged against the `count` notifications it should have."""

    count: int
    logs: list[Any]
    result_ok: bool
    cuts: int
    detail: str = ""
    indices: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.indices = [int(m.group(1)) for log in self.logs if (m := INDEX.search(str(log)))]

    @property
    def lost(self) -> int:
        return self.count - len(set(self.indices) & set(range(1, self.count + 1)))

    @property
    def duplicated(self) -> int:
        return len(self.indices) - len(set(self.indices))

    @property
    def out_of_order(self) -> int:
        return sum(1 for a, b in zip(self.indices, self.indices[1:], strict=False) if b < a)

    @property
    def perfect(self) -> bool:
        return self.result_ok and self.lost == self.duplicated == self.out_of_order == 0


def arguments(count: int, caller: str) -> dict[str, Any]:
    return {"interval": 0.001, "count": count, "caller": caller}


def result_complete(result: CallToolResult | None, count: int) -> bool:
    return (
        result is not None
        and not result.is_error
        and result.structured_content is not None
        and result.structured_content.get("sent") == count
    )


def cut_after(
    proxy: CuttingProxy, cut_at: int, *, server_notices: bool = True, refuse: bool = False
) -> Callable[[int], None]:
    """A `Received.after_log` hook that cuts the connection when the `cut_at`-th notification arrives."""

    def maybe_cut(received: int) -> None:
        if received == cut_at:
            proxy.refuse = refuse
            proxy.cut(server_notices=server_notices)

    return maybe_cut


async def python_auto(port: int, count: int, *, server_notices: bool, rng: random.Random) -> Outcome:
    """The Python SDK client reconnects by itself when its call's stream drops."""
    async with cutting_proxy(port) as proxy:
        received = Received(after_log=cut_after(proxy, rng.randint(1, count - 1), server_notices=server_notices))
        async with mcp_client(proxy.url, received=received) as client:
            result = await client.call_tool(TOOL_NAME, arguments(count, "py-auto"))
        return Outcome(count, received.logs, result_complete(result, count), proxy.cuts)


async def python_explicit(port: int, count: int, *, delay: float, rng: random.Random) -> Outcome:
    """The call's stream drops and the proxy refuses the client's own retries; after `delay` the
    application resumes explicitly, on a new connection, with the last resumption token it saved."""
    async with cutting_proxy(port) as proxy:
        tokens: list[str] = []

        async def on_token(token: str) -> None:
            tokens.append(token)

        # The network stays down: the client's own reconnection attempts are refused too.
        received = Received(after_log=cut_after(proxy, rng.randint(1, count - 1), refuse=True))
        async with mcp_client(proxy.url, received=received) as client:
            request = CallToolRequest(
                params=CallToolRequestParams(name=TOOL_NAME, arguments=arguments(count, "py-explicit"))
            )
            try:
                await client.session.send_request(
                    request, CallToolResult, metadata=ClientMessageMetadata(on_resumption_token_update=on_token)
                )
                first_ok = True
            except Exception:
                first_ok = False  # the retries were refused: the call is abandoned client-side
            await anyio.sleep(delay)
            proxy.refuse = False
            result = None
            if not first_ok:
                result = await client.session.send_request(
                    request, CallToolResult, metadata=ClientMessageMetadata(resumption_token=tokens[-1])
                )
        return Outcome(count, received.logs, first_ok or result_complete(result, count), proxy.cuts)


async def typescript_auto(port: int, count: int, *, server_notices: bool, rng: random.Random) -> Outcome:
    """The TypeScript SDK client reconnects by itself. It runs in its own process, so the cut is timed
    by the job's progress as the REST API reports it."""
    cut_at = rng.randint(1, count - 1)
    caller = f"ts-auto-{uuid4().hex}"  # its own: an earlier run's job with the same caller would set off the cut
    async with cutting_proxy(port) as proxy, anyio.create_task_group() as tg:
        config = {"url": proxy.url, "tool": TOOL_NAME, "arguments": arguments(count, caller)}

        async def cut_when_due() -> None:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                while True:
                    jobs = (await http.get("/jobs", params={"limit": 20})).json()["items"]
                    if any(job["caller"] == caller and job["sent"] >= cut_at for job in jobs):
                        proxy.cut(server_notices=server_notices)
                        return
                    await anyio.sleep(0.002)

        tg.start_soon(cut_when_due)
        out = await anyio.to_thread.run_sync(run_node_client, config)
        tg.cancel_scope.cancel()
    result = out.get("result") or {}
    ok = not result.get("isError", True) and (result.get("structuredContent") or {}).get("sent") == count
    return Outcome(count, out.get("logs", []), ok, proxy.cuts, out.get("error") or json.dumps(result))


async def typescript_explicit(port: int, count: int, *, delay: float, rng: random.Random) -> Outcome:
    """One Node process drops its connections after k notifications; a second resumes with `resumptionToken`.

    The first one goes through the proxy, which sees the drop: a cut counts when the process dropped the
    connection that carried its call while the call's job was still running (the stream was live). Its
    exit closes that connection anyway, so a drop after the job's end (a call already complete) is no cut.
    """
    cut_at = rng.randint(1, count - 1)
    caller = f"ts-explicit-{uuid4().hex}"
    async with cutting_proxy(port) as proxy:
        first = await anyio.to_thread.run_sync(
            run_node_client,
            {
                "url": proxy.url,
                "tool": TOOL_NAME,
                "arguments": arguments(count, caller),
                "disconnectAfterLogs": cut_at,
            },
        )
        with anyio.move_on_after(5):  # the process has exited: the proxy sees its connections close at once
            while not proxy.calls_dropped:
                await anyio.sleep(0.01)
        dropped = list(proxy.calls_dropped)
    await anyio.sleep(delay)
    second = await anyio.to_thread.run_sync(
        run_node_client,
        {
            "url": f"http://127.0.0.1:{port}/mcp",
            "tool": TOOL_NAME,
            "arguments": arguments(count, caller),
            "sessionId": first.get("sessionId"),
            "protocolVersion": first.get("protocolVersion"),
            "resumptionToken": first.get("lastEventId"),
        },
    )
    result = second.get("result") or {}
    ok = not result.get("isError", True) and (result.get("structuredContent") or {}).get("sent") == count
    ended = await _job_ended_at(port, caller)
    cuts = sum(1 for at in dropped if at < ended)
    detail = first.get("error") or second.get("error") or ""
    return Outcome(count, first.get("logs", []) + second.get("logs", []), ok, cuts, detail)


async def _job_ended_at(port: int, caller: str) -> float:
    """When (`time.time()`) the newest job of `caller` ended; infinity while it runs, 0 if there is none."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        jobs = (await http.get("/jobs", params={"limit": 100})).json()["items"]
    job = next((job for job in jobs if job["caller"] == caller), None)
    if job is None:
        return 0.0
    if job["finished_at"] is None:
        return math.inf
    return datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")).timestamp()


async def standalone_get(port: int, count: int, *, server_notices: bool, rng: random.Random) -> Outcome:
    """A REST job pushes to a session's GET stream; the stream drops and the client reconnects it."""
    async with cutting_proxy(port) as proxy:
        received = Received(after_log=cut_after(proxy, rng.randint(1, count - 1), server_notices=server_notices))
        async with mcp_client(proxy.url, received=received) as client, httpx.AsyncClient() as http:
            probe = await client.call_tool(TOOL_NAME, {"interval": 0, "count": 1, "caller": "probe"})
            received.logs.clear()
            base = f"http://127.0.0.1:{port}"
            job_id = (probe.structured_content or {})["job_id"]
            session_id = (await http.get(f"{base}/jobs/{job_id}")).json()["session_id"]
            body = {**arguments(count, "get-stream"), "session_id": session_id}
            job = (await http.post(f"{base}/jobs", json=body)).json()
            with anyio.move_on_after(30):
                while (await http.get(f"{base}/jobs/{job['id']}")).json()["status"] == "running":
                    await anyio.sleep(0.05)
                while len(received.logs) < count:
                    await anyio.sleep(0.05)
            final = (await http.get(f"{base}/jobs/{job['id']}")).json()
        return Outcome(count, received.logs, final["status"] == "completed", proxy.cuts)
