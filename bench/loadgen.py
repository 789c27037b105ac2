"""A lean MCP-over-HTTP load generator: raw HTTP/1.1 on asyncio (uvloop), parsed by httptools.

Speaks the 2025-11-25 (handshake) era of StreamableHTTP: `initialize`, then
`notifications/initialized`, then `tools/call` POSTs whose SSE responses are read to
the end, all on one keep-alive connection per session, with `Mcp-Session-Id` and
`MCP-Protocol-Version` on every request after the first. Requests are pre-encoded and
responses are parsed in C, so a client costs a few microseconds per event.

Each scenario prints one JSON object on stdout:

    python -m bench.loadgen tools --port P --sessions 10 --duration 5 [--server-pid PID]
    python -m bench.loadgen tools --port P --sessions 100 --raw        # a bare SSE endpoint, no MCP
    python -m bench.loadgen notify --port P --count 10000 --reps 3
    python -m bench.loadgen rss --port P --sessions 1000 --server-pid PID
    python -m bench.loadgen replay --port P --stages 1000 99000 900000 --replays 60

`--server-pid` adds the server's CPU use over the measured window (and is required for
`rss`); the generator's own CPU use is always reported, as evidence that it is not the
bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httptools
import psutil
import uvloop

PROTOCOL_VERSION = "2025-11-25"
TOOL_NAME = "start-notification-stream"
SSE_SEPARATOR = b"\r\n\r\n"
MAX_SETUP_CONCURRENCY = 32


class HttpError(Exception):
    pass


# SSE


class SseReader:
    """Splits an SSE body into events as it arrives; counts data events and keeps the newest ids."""

    __slots__ = ("_buf", "data_events", "ids", "last_data", "reached", "reached_at", "target")

    def __init__(self, *, keep_ids: int = 0, target: int = 0) -> None:
        self._buf = b""
        self.data_events = 0
        self.ids: deque[bytes] = deque(maxlen=keep_ids or 1)
        self.last_data = b""
        self.target = target
        """After this many data events, `reached` is set (0: never)."""
        self.reached: asyncio.Future[float] | None = None
        self.reached_at = 0.0

    def feed(self, chunk: bytes) -> None:
        data = self._buf + chunk if self._buf else chunk
        find = data.find
        start = 0
        end = find(SSE_SEPARATOR)
        while end >= 0:
            self._event(data[start:end])
            start = end + 4
            end = find(SSE_SEPARATOR, start)
        self._buf = data[start:] if start < len(data) else b""

    def _event(self, block: bytes) -> None:
        payload = b""
        for line in block.split(b"\r\n"):
            if line.startswith(b"data:"):
                payload = line[5:].lstrip(b" ")
            elif line.startswith(b"id:"):
                self.ids.append(line[3:].strip())
        if payload:
            self.data_events += 1
            self.last_data = payload
            if self.data_events == self.target:
                self.reached_at = time.perf_counter()
                if self.reached is not None and not self.reached.done():
                    self.reached.set_result(self.reached_at)


# HTTP


@dataclass(eq=False)
class Exchange:
    """One request and its response; `head` resolves with the status line, `done` at the end of the body."""

    head: asyncio.Future[int]
    done: asyncio.Future[None]
    sse: SseReader | None
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)

    @property
    def json(self) -> Any:
        if self.sse is not None:
            return json.loads(self.sse.last_data) if self.sse.last_data else None
        return json.loads(self.body) if self.body else None


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, host_header: bytes) -> None:
        self.host_header = host_header
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._current: Exchange | None = None
        self._loop = asyncio.get_running_loop()
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: cls(f"{host}:{port}".encode()), host, port)
        return conn

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"bad response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection closed: {exc}"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._current is not None:
            self._current.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        ex = self._current
        if ex is None:
            return
        ex.status = self._parser.get_status_code()
        if ex.sse is not None and not ex.headers.get("content-type", "").startswith("text/event-stream"):
            ex.sse = None  # a plain body (an error, or JSON): keep it whole
        if not ex.head.done():
            ex.head.set_result(ex.status)

    def on_body(self, body: bytes) -> None:
        ex = self._current
        if ex is None:
            return
        if ex.sse is not None:
            ex.sse.feed(body)
        else:
            ex.body += body

    def on_message_complete(self) -> None:
        ex, self._current = self._current, None
        if ex is not None and not ex.done.done():
            ex.done.set_result(None)

    # API

    def send(
        self, method: bytes, path: bytes, headers: bytes = b"", body: bytes = b"", *, sse: SseReader | None = None
    ) -> Exchange:
        """Write a request; `headers` is pre-encoded `Name: value\\r\\n` lines."""
        if self._current is not None:
            raise RuntimeError("a request is already in flight on this connection")
        if self.closed or self._transport is None:
            raise ConnectionError("connection closed")
        ex = Exchange(self._loop.create_future(), self._loop.create_future(), sse)
        self._current = ex
        length = b"Content-Length: %d\r\n" % len(body) if body or method == b"POST" else b""
        self._transport.write(
            b"%s %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n%s" % (method, path, self.host_header, headers, length, body)
        )
        return ex

    async def request(
        self, method: bytes, path: bytes, headers: bytes = b"", body: bytes = b"", *, sse: SseReader | None = None
    ) -> Exchange:
        ex = self.send(method, path, headers, body, sse=sse)
        await ex.done
        return ex

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.close()
        self.closed = True

    def abandon(self) -> None:
        """Drop the response in flight (its stream stays open server-side until the close is seen) and close."""
        self._current = None
        self.close()

    def _fail(self, exc: Exception) -> None:
        ex, self._current = self._current, None
        if ex is None:
            return
        for fut in (ex.head, ex.done):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: the other one carries it to the caller


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


# Measurements


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _busy_cpu_seconds() -> float:
    """CPU seconds all cores have spent busy since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class CpuWindow:
    """CPU use over a wall-clock window, in cores: this process, the server, and everything else."""

    def __init__(self, server_pid: int | None) -> None:
        self._me = psutil.Process()
        self._server = psutil.Process(server_pid) if server_pid else None
        self._start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self.result: dict[str, float] = {}

    def _sample(self) -> tuple[float, float, float, float]:
        mine = self._me.cpu_times()
        theirs = self._server.cpu_times() if self._server is not None else None
        return (
            time.perf_counter(),
            mine.user + mine.system,
            (theirs.user + theirs.system) if theirs is not None else 0.0,
            _busy_cpu_seconds(),
        )

    def begin(self) -> None:
        self._start = self._sample()

    def end(self) -> dict[str, float]:
        wall, mine, theirs, busy = self._sample()
        elapsed = wall - self._start[0]
        me, server = (mine - self._start[1]) / elapsed, (theirs - self._start[2]) / elapsed
        self.result = {"loadgen_cpu": me}
        if self._server is not None:
            self.result["server_cpu"] = server
            # Whatever else ran on the machine meanwhile (other users' processes): the noise floor.
            self.result["other_cpu"] = max(0.0, (busy - self._start[3]) / elapsed - me - server)
        return self.result


async def _bounded(coros: Sequence[Any], limit: int = MAX_SETUP_CONCURRENCY) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(run(coro) for coro in coros))


async def scenario_tools(args: argparse.Namespace) -> dict[str, Any]:
    """Closed loop: each session calls the tool again as soon as the previous call ends."""
    path = args.path.encode()
    sessions: list[McpSession | RawSession]
    if args.raw:
        conns = await _bounded([HttpConnection.open(args.host, args.port) for _ in range(args.sessions)])
        sessions = [RawSession(conn, path) for conn in conns]
    else:
        sessions = list(await _bounded([McpSession.open(args.host, args.port, path) for _ in range(args.sessions)]))
    latencies: list[float] = []
    errors = 0
    missing = 0
    window_start = time.perf_counter() + args.warmup
    window_end = window_start + args.duration
    cpu = CpuWindow(args.server_pid)

    async def watch_cpu() -> None:
        await asyncio.sleep(window_start - time.perf_counter())
        cpu.begin()
        await asyncio.sleep(window_end - time.perf_counter())
        cpu.end()

    async def worker(session: McpSession | RawSession) -> None:
        nonlocal errors, missing
        while time.perf_counter() < window_end:
            outcome = await session.call_tool(args.count, args.interval)
            done = time.perf_counter()
            if window_start <= done <= window_end:
                latencies.append(outcome.latency)
                if not outcome.ok:
                    errors += 1
                if not args.raw and outcome.notifications != args.count:
                    missing += 1

    await asyncio.gather(watch_cpu(), *(worker(session) for session in sessions))
    await _bounded([session.delete() for session in sessions])
    for session in sessions:
        session.conn.close()
    return {
        "scenario": "tools",
        "sessions": args.sessions,
        "calls": len(latencies),
        "calls_per_s": len(latencies) / args.duration,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
        "incomplete": missing,
        **cpu.result,
    }


async def scenario_notify(args: argparse.Namespace) -> dict[str, Any]:
    """One call with a large `count`: notifications per second on one stream."""
    session = await McpSession.open(args.host, args.port, args.path.encode())
    await session.call_tool(min(args.count, 200), 0.0)  # warm-up
    rates: list[float] = []
    cpus: list[dict[str, float]] = []
    errors = 0
    for _ in range(args.reps):
        cpu = CpuWindow(args.server_pid)
        cpu.begin()
        outcome = await session.call_tool(args.count, args.interval)
        cpus.append(cpu.end())
        rates.append(outcome.notifications / outcome.latency)
        if not outcome.ok or outcome.notifications != args.count:
            errors += 1
    await session.delete()
    session.conn.close()
    return {
        "scenario": "notify",
        "count": args.count,
        "reps": rates,
        "notifications_per_s": statistics.median(rates),
        "errors": errors,
        **{key: statistics.median(c[key] for c in cpus) for key in cpus[0]},
    }


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


async def _settled_rss(pid: int, settle: float) -> int:
    await asyncio.sleep(settle)
    samples = []
    for _ in range(3):
        samples.append(_rss(pid))
        await asyncio.sleep(0.2)
    return int(statistics.median(samples))


async def scenario_rss(args: argparse.Namespace) -> dict[str, Any]:
    """Server RSS growth per session for `sessions` sessions that each hold a GET stream open."""
    if not args.server_pid:
        raise SystemExit("rss needs --server-pid")
    path = args.path.encode()

    async def open_one() -> tuple[McpSession, Exchange]:
        session = await McpSession.open(args.host, args.port, path)
        return session, await session.open_get_stream()

    # Warm-up sessions load whatever is loaded lazily; they stay open, in both samples.
    warm = await _bounded([open_one() for _ in range(args.warmup_sessions)])
    before = await _settled_rss(args.server_pid, args.settle)
    start = time.perf_counter()
    held = await _bounded([open_one() for _ in range(args.sessions)])
    setup = time.perf_counter() - start
    after = await _settled_rss(args.server_pid, args.settle)
    alive = sum(1 for session, _ in held if not session.conn.closed)
    for session, _ in [*warm, *held]:
        session.conn.abandon()
    return {
        "scenario": "rss",
        "sessions": args.sessions,
        "alive": alive,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "rss_per_session_kb": (after - before) / args.sessions / 1024,
        "setup_s": setup,
    }


async def _replay_once(args: argparse.Namespace, session: McpSession, last_event_id: bytes, expect: int) -> float:
    """Latency of a GET with `Last-Event-ID` until `expect` data events have arrived; NaN on failure."""
    conn = await HttpConnection.open(args.host, args.port)
    reader = SseReader(target=expect)
    reader.reached = asyncio.get_running_loop().create_future()
    headers = b"Accept: text/event-stream\r\nLast-Event-ID: " + last_event_id + b"\r\n" + session.session_headers()
    start = time.perf_counter()
    ex = conn.send(b"GET", session.path, headers, sse=reader)
    try:
        done = await asyncio.wait_for(asyncio.shield(reader.reached), timeout=args.replay_timeout)
        result = done - start
    except (TimeoutError, ConnectionError, HttpError):
        result = float("nan")
    if not ex.done.done():
        conn.abandon()  # the stock transport keeps a resumed stream open after the replay
        ex.done.cancel()
    else:
        conn.close()
    ex.head.cancel()
    return result


async def scenario_replay(args: argparse.Namespace) -> dict[str, Any]:
    """Fill one session's history with tool calls, then time replays of the last `window` events."""
    session = await McpSession.open(args.host, args.port, args.path.encode())
    stages = []
    stored = 0
    for count in args.stages:
        fill_start = time.perf_counter()
        outcome = await session.call_tool(count, 0.0, keep_ids=args.window + 1)
        fill = time.perf_counter() - fill_start
        stored += count + 2  # the notifications, the call's priming event and its result
        if not outcome.ok or len(outcome.ids) < args.window + 1:
            stages.append({"stored": stored, "error": "fill call failed"})
            continue
        await asyncio.sleep(args.settle)  # e.g. let a batching store write its queue
        anchor = outcome.ids[0]
        latencies = []
        for _ in range(args.replays):
            latencies.append(await _replay_once(args, session, anchor, args.window))
            await asyncio.sleep(args.pause)
        good = [value for value in latencies if value == value]
        stages.append(
            {
                "stored": stored,
                "fill_s": fill,
                "fill_notifications_per_s": count / fill,
                "replays": len(good),
                "failed": len(latencies) - len(good),
                "p50_ms": percentile(good, 50) * 1000,
                "p99_ms": percentile(good, 99) * 1000,
                "max_ms": max(good) * 1000 if good else float("nan"),
            }
        )
    session.conn.close()
    return {"scenario": "replay", "window": args.window, "stages": stages}


SCENARIOS = {"tools": scenario_tools, "notify": scenario_notify, "rss": scenario_rss, "replay": scenario_replay}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/mcp")
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--count", type=int, default=1, help="notifications per tool call")
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds (tools)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (tools)")
    parser.add_argument("--raw", action="store_true", help="tools: a bare SSE endpoint, no MCP handshake")
    parser.add_argument("--reps", type=int, default=3, help="notify: calls measured")
    parser.add_argument("--warmup-sessions", type=int, default=10, help="rss")
    parser.add_argument("--settle", type=float, default=1.0, help="rss, replay: seconds to wait before sampling")
    parser.add_argument("--stages", type=int, nargs="+", default=[1000, 99_000, 900_000], help="replay: fill calls")
    parser.add_argument("--window", type=int, default=10, help="replay: events replayed")
    parser.add_argument("--replays", type=int, default=60, help="replay: per stage")
    parser.add_argument("--pause", type=float, default=0.005, help="replay: seconds between replays")
    parser.add_argument("--replay-timeout", type=float, default=10.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = uvloop.run(SCENARIOS[args.scenario](args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
