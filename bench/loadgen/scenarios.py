"""The load generator's scenarios (`tools`, `notify`, `rss`, `replay`), each returning its figures as a dict."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

import psutil

from bench.loadgen.http import Exchange, HttpConnection, HttpError, SseReader
from bench.loadgen.session import McpSession, RawSession

MAX_SETUP_CONCURRENCY = 32


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

    def __init__(self, server_pid: int | None, watched: Sequence[int] = ()) -> None:
        self._me = psutil.Process()
        self._server = psutil.Process(server_pid) if server_pid else None
        self._watched = [psutil.Process(pid) for pid in watched]
        self._start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self._watched_start: list[float] = []
        self.result: dict[str, Any] = {}

    def _watched_cpu(self) -> list[float]:
        return [sum(process.cpu_times()[:2]) for process in self._watched]

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
        self._watched_start = self._watched_cpu()

    def end(self) -> dict[str, Any]:
        wall, mine, theirs, busy = self._sample()
        elapsed = wall - self._start[0]
        me, server = (mine - self._start[1]) / elapsed, (theirs - self._start[2]) / elapsed
        self.result = {"loadgen_cpu": me}
        spent = [(now - then) / elapsed for now, then in zip(self._watched_cpu(), self._watched_start, strict=True)]
        if self._watched:
            pids = [str(process.pid) for process in self._watched]
            self.result["watched_cpu"] = dict(zip(pids, spent, strict=True))
        if self._server is not None:
            self.result["server_cpu"] = server
            # Whatever else ran on the machine meanwhile (other users' processes): the noise floor.
            self.result["other_cpu"] = max(0.0, (busy - self._start[3]) / elapsed - me - server - sum(spent))
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
    cpu = CpuWindow(args.server_pid, args.watch_pid)

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


async def wait_idle(
    pids: Sequence[int], *, window: float = 0.2, below: float = 0.05, within: float = 30.0
) -> tuple[float, float] | None:
    """Wait until the processes `pids`, together, have used less than `below` of a core over `window` seconds.

    What a call leaves behind once its response has ended (a write-behind store's queue, say)
    is then done. Returns the seconds waited and the processes' CPU seconds meanwhile (up to the
    idle window that ended the wait), or None if they were not idle within `within` seconds.
    """
    processes = [psutil.Process(pid) for pid in pids]

    def cpu() -> float:
        return sum(sum(process.cpu_times()[:2]) for process in processes)

    start = time.perf_counter()
    cpu_start = then = cpu()
    while True:
        await asyncio.sleep(window)
        now = cpu()
        if now - then < below * window:
            return time.perf_counter() - start - window, then - cpu_start
        if time.perf_counter() - start > within:
            return None
        then = now


async def scenario_notify(args: argparse.Namespace) -> dict[str, Any]:
    """One call with a large `count`: notifications per second on one stream.

    Every call, the warm-up's too, is followed by a wait until the server is idle, so that each
    measured call starts from a server with nothing left to do, and pays for what it left: the
    SQLite store writes a call's rows behind it, so its response ends before its work does. A
    call is charged its latency plus the server CPU spent after it until idle (on the one core
    the server has, the time that work takes from the next call), and its CPU is counted over
    both. Back to back, without the wait, the first call's rows were written in the second's
    window, and the first measured nearly twice the rate of the others; from an idle server
    without the charge, every call would have measured like that first one.
    """
    if not args.server_pid:
        raise SystemExit("notify needs --server-pid (each call starts once the server is idle)")
    session = await McpSession.open(args.host, args.port, args.path.encode())
    await session.call_tool(min(args.count, 200), 0.0)  # warm-up
    rates: list[float] = []
    cpus: list[dict[str, float]] = []
    drains: list[dict[str, float]] = []
    errors = 0
    undrained = 0
    busy = [args.server_pid, *args.watch_pid]  # the server, and its store's process if it has one
    if await wait_idle(busy) is None:
        undrained += 1
    for _ in range(args.reps):
        cpu = CpuWindow(args.server_pid)
        cpu.begin()
        outcome = await session.call_tool(args.count, args.interval)
        window = cpu.end()
        if not outcome.ok or outcome.notifications != args.count:
            errors += 1
        owed = 0.0
        if (drained := await wait_idle(busy)) is None:
            undrained += 1
        else:
            owed = drained[1]
            drains.append({"seconds": drained[0], "server_cpu_s": owed})
        charged = outcome.latency + owed
        rates.append(outcome.notifications / charged)
        cpus.append({**window, "server_cpu": (window["server_cpu"] * outcome.latency + owed) / charged})
    await session.delete()
    session.conn.close()
    return {
        "scenario": "notify",
        "count": args.count,
        "reps": rates,
        "notifications_per_s": statistics.median(rates),
        "errors": errors + undrained,
        "undrained": undrained,
        "drains": drains,
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
