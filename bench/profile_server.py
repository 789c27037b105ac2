"""Where a server spends its CPU per tool call: py-spy samples of the server under the tool-call load.

    uv pip install py-spy      # not a project dependency
    uv run python -m bench.profile_server --server service-sqlite --sessions 10 --duration 20
    uv run python -m bench.profile_server --server service-sqlite --scenario notify
    uv run python -m bench.profile_server --server service-sqlite --redis    # SERVICE_STORE=redis
    uv run python -m bench.profile_server --summarize bench/results/profile-service-sqlite.txt

Starts the server pinned to core 0 (as `bench.run` does), attaches `py-spy record`
(non-blocking, all threads, raw collapsed stacks) while `bench.loadgen tools` drives it
from core 1, then summarizes the samples three ways:

- self time by package (the leaf frame's top-level package; `service` is this project);
- time under each of this project's functions: each sample is charged to the innermost
  `service/` frame on its stack (so a library call made by our code counts as ours),
  except for frames that only wrap the framework's work (our ASGI middleware, transport
  overrides that call `super()`); the rest is the SDK's, Starlette's or uvicorn's own;
- the functions with the most self time.

Idle samples (worker threads waiting for work) are left out.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psutil

from bench.servers import (
    LOADGEN_CORE,
    MCP_SERVERS,
    ROOT,
    SDK_LIMIT_SERVERS,
    SERVER_CORE,
    TS_SDK,
    loadgen,
    pin,
    running,
)
from harness.service import free_port
from service.cluster.redis_server import RedisServer

IDLE_LEAVES = ("Condition.wait", "Queue.get", "Thread._wait_for_tstate_lock", "select (selectors")
PACKAGES = (
    "mcp_types",
    "mcp",
    "sse_starlette",
    "starlette",
    "fastapi",
    "uvicorn",
    "anyio",
    "pydantic_core",
    "pydantic",
    "httptools",
    "uvloop",
)
# Frames of ours that only wrap the framework's or the SDK's own work (ASGI middleware: any `__call__`
# and its `send` wrappers; an override that calls `super()`): they own their self time, not what runs
# beneath them.
PASS_THROUGH = (".__call__ (", "send_json_errors", "ResumableTransport._run_sse_writer")
ENTRY_POINTS = ("<module>", "main (")
FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?):(?P<line>\d+)\)$")


def frames_of(path: Path) -> Iterator[tuple[list[str], int]]:
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(idle in frames[-1] for idle in IDLE_LEAVES):
            continue
        yield frames, int(count)


def package(frame: str) -> str:
    match = FRAME.match(frame)
    path = match["path"] if match else frame
    if path.startswith("service/"):
        return "service (ours)"
    if path.startswith("bench/"):
        return "bench (ours)"
    for name in PACKAGES:
        if path.startswith(name + "/"):
            return name
    return "stdlib/other"


def function(frame: str) -> str:
    match = FRAME.match(frame)
    return f"{match['func']} ({match['path']})" if match else frame


def is_ours(frame: str) -> bool:
    match = FRAME.match(frame)
    if match is None:
        return False
    path = match["path"]
    ours = path.startswith("service/") or path == "bench/example_server.py"
    return ours and not path.endswith(("cli.py", "__main__.py")) and not frame.startswith(ENTRY_POINTS)


def owner(frames: list[str]) -> str:
    """The innermost frame of ours that is responsible for this sample (see PASS_THROUGH)."""
    for depth, frame in enumerate(reversed(frames)):
        if is_ours(frame):
            if depth > 0 and any(name in frame for name in PASS_THROUGH):
                break
            return function(frame)
    return "(none of ours: framework, SDK, server)"


def summarize(path: Path, top: int = 25, cpu_us: tuple[float, float] | None = None) -> str:
    """The samples three ways; with `cpu_us` (the measured CPU per call, or per notification, of
    the event loop's thread and of the worker threads), also the self time by package in us."""
    total = 0
    by_package: collections.Counter[str] = collections.Counter()
    # Keyed by "in a worker thread" (False: the event loop's thread).
    by_thread_package = {False: collections.Counter[str](), True: collections.Counter[str]()}
    by_leaf: collections.Counter[str] = collections.Counter()
    by_owner: collections.Counter[str] = collections.Counter()
    for frames, count in frames_of(path):
        total += count
        by_package[package(frames[-1])] += count
        by_thread_package["Thread._bootstrap" in frames[0]][package(frames[-1])] += count
        by_leaf[function(frames[-1])] += count
        by_owner[owner(frames)] += count
    if total == 0:
        return "no samples"
    threads = by_thread_package[True].total()
    lines = [f"{total} samples (idle excluded); {100 * threads / total:.1f}% in worker threads", ""]
    lines.append("self time by package:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_package.most_common()]
    if cpu_us is not None:
        # A worker thread that is runnable but waiting for the core (or the GIL) is sampled as busy, so
        # raw shares overstate it when it shares one core with the event loop: weigh each thread's
        # samples by the CPU that thread really used.
        lines += ["", "self time by package, us per call or notification (each thread's samples weighed by its CPU):"]
        us_by_package: dict[str, float] = collections.defaultdict(float)
        for worker, us in zip((False, True), cpu_us, strict=True):
            samples = by_thread_package[worker].total()
            for name, n in by_thread_package[worker].items():
                us_by_package[name] += us * n / samples
        lines += [f"  {us:7.0f}  {name}" for name, us in sorted(us_by_package.items(), key=lambda item: -item[1])]
        in_all = sum(us_by_package.values())
        lines.append(f"  {in_all:7.0f}  in all (event loop thread {cpu_us[0]:.0f}, worker threads {cpu_us[1]:.0f})")
    lines += ["", "time under our functions (innermost frame of ours, with the library calls it makes):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_owner.most_common(top)]
    lines += ["", "top self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_leaf.most_common(top)]
    return "\n".join(lines)


def profile(
    server_name: str,
    scenario: str,
    sessions: int,
    duration: float,
    rate: int,
    out: Path,
    *,
    redis: bool = False,
    extra: dict[str, str] | None = None,
) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: uv pip install py-spy")
    with ExitStack() as stack:
        settings = dict(extra or {})
        if redis:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="profile-redis-")))
            redis_server = RedisServer(workdir, free_port()).start()
            stack.callback(redis_server.stop)
            assert redis_server.proc is not None
            os.sched_setaffinity(redis_server.proc.pid, {SERVER_CORE})  # the store's work is the server's cost
            settings |= {"SERVICE_STORE": "redis", "SERVICE_REDIS_URL": redis_server.url}
        server = stack.enter_context(running(server_name, settings=settings or None))
        # Warm up, so that start-up and first-call costs stay out of the samples.
        loadgen(server, "tools", "--sessions", str(sessions), "--duration", "2", "--warmup", "0.5", timeout=120)
        before = thread_cpu(server.pid)
        spy_args = ["--rate", str(rate), "--duration", str(int(duration)), "--format", "raw", "--output", str(out)]
        spy = subprocess.Popen(
            [py_spy, "record", "--nonblocking", "--pid", str(server.pid), *spy_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=pin(LOADGEN_CORE),
        )
        time.sleep(0.5)
        if scenario == "tools":
            args = ["--sessions", str(sessions), "--duration", str(duration - 1.0), "--warmup", "0.2"]
        else:  # one long stream of notifications, about `duration` seconds of it at ~3000/s
            args = ["--count", str(int(duration * 1000)), "--reps", "2"]
        result = loadgen(server, scenario, *args, timeout=duration + 120)
        _, err = spy.communicate(timeout=duration + 60)
        if spy.returncode != 0:
            raise SystemExit(f"py-spy failed: {err.decode(errors='replace')}")
        after = thread_cpu(server.pid)
    loop_cpu, worker_cpu = after[0] - before[0], after[1] - before[1]
    cpu_us = None
    if result is not None and scenario == "tools":
        per_unit = 1e6 * result["server_cpu"] / result["calls_per_s"]
        print(
            f"{server_name}: {result['calls_per_s']:.0f} calls/s at {sessions} sessions, server CPU "
            f"{result['server_cpu']:.2f} cores = {per_unit:.0f} us per call (under the profiler); "
            f"other processes {result['other_cpu']:.2f} cores"
        )
    elif result is not None:
        per_unit = 1e6 * result["server_cpu"] / result["notifications_per_s"]
        print(
            f"{server_name}: {result['notifications_per_s']:.0f} notifications/s, server CPU "
            f"{result['server_cpu']:.2f} cores = {per_unit:.0f} us per notification (under the profiler)"
        )
    if result is not None and loop_cpu + worker_cpu > 0:
        loop_share = loop_cpu / (loop_cpu + worker_cpu)
        cpu_us = (per_unit * loop_share, per_unit * (1 - loop_share))
    print(summarize(out, cpu_us=cpu_us))


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds used so far by the process's main thread (the event loop) and by its other threads."""
    threads = psutil.Process(pid).threads()
    main = sum(t.user_time + t.system_time for t in threads if t.id == pid)
    return main, sum(t.user_time + t.system_time for t in threads if t.id != pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    python_servers = [name for name in (*MCP_SERVERS, *SDK_LIMIT_SERVERS) if name != TS_SDK]  # py-spy samples Python
    parser.add_argument("--server", choices=python_servers, default=MCP_SERVERS[0])
    parser.add_argument(
        "--scenario", choices=["tools", "notify"], default="tools", help="tool calls (count=1), or one long stream"
    )
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--out", type=Path, help="raw py-spy output (default: bench/results/profile-<server>.txt)")
    parser.add_argument("--summarize", type=Path, help="only summarize an existing raw py-spy file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--redis", action="store_true", help="SERVICE_STORE=redis, on a redis-server started here")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE", help="for the server's env")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize, args.top))
        return
    out = args.out or ROOT / "bench" / "results" / f"profile-{args.scenario}-{args.server}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.redis:
        out = out.with_name(out.stem + "-redis.txt")
    extra = dict(setting.split("=", 1) for setting in args.setting)
    profile(args.server, args.scenario, args.sessions, args.duration, args.rate, out, redis=args.redis, extra=extra)


if __name__ == "__main__":
    main()
