"""An MCP session of the 2025-11-25 era over one `HttpConnection`, and a raw one for the bare SSE endpoint."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from bench.loadgen.http import Exchange, HttpConnection, HttpError, SseReader
from service.tools.notification_stream import TOOL_NAME

PROTOCOL_VERSION = "2025-11-25"


# MCP


POST_HEADERS = b"Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"


def _call_body(request_id: int, count: int, interval: float, caller: str) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": TOOL_NAME, "arguments": {"interval": interval, "count": count, "caller": caller}},
        },
        separators=(",", ":"),
    ).encode()


@dataclass(slots=True)
class CallOutcome:
    latency: float
    notifications: int
    ok: bool
    ids: list[bytes]


class McpSession:
    """One MCP session (handshake era) on its own connection."""

    def __init__(self, conn: HttpConnection, path: bytes = b"/mcp") -> None:
        self.conn = conn
        self.path = path
        self.session_id = ""
        self._headers = POST_HEADERS
        self._next_id = 1

    @classmethod
    async def open(cls, host: str, port: int, path: bytes = b"/mcp") -> McpSession:
        session = cls(await HttpConnection.open(host, port), path)
        await session.initialize()
        return session

    async def initialize(self) -> None:
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "bench-loadgen", "version": "1.0"},
                },
            }
        ).encode()
        ex = await self.conn.request(b"POST", self.path, POST_HEADERS, body, sse=SseReader())
        reply = ex.json
        if ex.status != 200 or not isinstance(reply, dict) or "result" not in reply:
            raise HttpError(f"initialize: HTTP {ex.status}: {bytes(ex.body)[:200]!r} {reply!r}")
        self.session_id = ex.headers["mcp-session-id"]
        self._headers = POST_HEADERS + (
            f"Mcp-Session-Id: {self.session_id}\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n".encode()
        )
        ex = await self.conn.request(
            b"POST", self.path, self._headers, b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
        )
        if ex.status != 202:
            raise HttpError(f"notifications/initialized: HTTP {ex.status}")

    def session_headers(self) -> bytes:
        return f"Mcp-Session-Id: {self.session_id}\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n".encode()

    async def call_tool(
        self, count: int = 1, interval: float = 0.0, caller: str = "bench", *, keep_ids: int = 0
    ) -> CallOutcome:
        request_id = self._next_id
        self._next_id += 1
        body = _call_body(request_id, count, interval, caller)
        reader = SseReader(keep_ids=keep_ids)
        start = time.perf_counter()
        ex = await self.conn.request(b"POST", self.path, self._headers, body, sse=reader)
        latency = time.perf_counter() - start
        last = reader.last_data or ex.body  # an SSE answer's last event, or a JSON answer
        ok = ex.status == 200 and b'"result"' in last and b'"isError":true' not in last
        return CallOutcome(latency, reader.data_events - 1, ok, list(reader.ids) if keep_ids else [])

    async def open_get_stream(self) -> Exchange:
        """Open the standalone GET stream and return once its headers have arrived (it stays open)."""
        headers = b"Accept: text/event-stream\r\n" + self.session_headers()
        ex = self.conn.send(b"GET", self.path, headers, sse=SseReader())
        status = await ex.head
        if status != 200:
            raise HttpError(f"GET stream: HTTP {status}")
        return ex

    async def delete(self) -> None:
        if not self.conn.closed:
            await self.conn.request(b"DELETE", self.path, self.session_headers())


class RawSession:
    """A connection to a bare SSE endpoint, with the same `call_tool` shape (for the calibration)."""

    def __init__(self, conn: HttpConnection, path: bytes) -> None:
        self.conn = conn
        self.path = path

    async def call_tool(self, count: int = 1, interval: float = 0.0, caller: str = "bench") -> CallOutcome:
        reader = SseReader()
        start = time.perf_counter()
        ex = await self.conn.request(
            b"POST", self.path, POST_HEADERS, _call_body(1, count, interval, caller), sse=reader
        )
        latency = time.perf_counter() - start
        return CallOutcome(latency, reader.data_events - 1, ex.status == 200 and b'"result"' in reader.last_data, [])

    async def delete(self) -> None:
        return None
