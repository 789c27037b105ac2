"""Benchmark: this service (SQLite and memory stores) against the SDK's simple streamable HTTP example.

    uv run python -m bench.run            # the full run (about 25 minutes), writes docs/benchmarks.{md,png,json}
    uv run python -m bench.run --quick    # a smoke run (under 2 minutes) to bench/results/; exits 1 on errors
    uv run python -m bench.run --render docs/benchmarks.json   # the report again, from a run's stored figures

Each server runs pinned to core 0 and the load generator (`bench.loadgen`) to core 1.
Every round starts fresh server processes in a rotated order; the figures are medians
over the rounds. Per round and server: tool calls at 1, 10 and 100 concurrent sessions
(count=1, interval=0), one call with count=10000, and (in a fresh process) the RSS per
session with 1000 sessions each holding a GET stream. Replay latency is measured once per
server, after filling one session's history to 1k, 100k and 1M events with tool calls.
A bare Starlette SSE endpoint is driven like the tool calls to show the load generator's
ceiling.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from operator import itemgetter
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE = 0
LOADGEN_CORE = 1
SESSIONS = (1, 10, 100)

SERVICE_SQLITE = "service-sqlite"
SERVICE_MEMORY = "service-memory"
EXAMPLE = "example"
BARE = "bare"
MCP_SERVERS = (SERVICE_SQLITE, SERVICE_MEMORY, EXAMPLE)
# Measured for tool calls at 1 session only, where the SDK sets the limit (docs/performance.md):
SERVICE_INLINE = "service-inline"  # the service, each request handled in its POST's task (bench/inline_dispatch.py)
SDK_FLOOR = "sdk-floor"  # the SDK's least work per call (bench/example_server.py --floor)
SDK_LIMIT_SERVERS = (SERVICE_INLINE, SDK_FLOOR)
EVERY_SERVER = (*MCP_SERVERS, BARE, *SDK_LIMIT_SERVERS)

PACKAGES = (
    "mcp",
    "mcp-types",
    "fastapi",
    "starlette",
    "sse-starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "anyio",
    "pydantic",
    "pydantic-core",
)


@dataclass(frozen=True)
class Plan:
    rounds: int
    duration: float
    warmup: float
    notify_count: int
    notify_reps: int
    rss_sessions: int
    replay_stages: tuple[int, ...]
    replays: int
    out_dir: Path
    quiet_wait: float
    """Seconds to wait, at most, for other processes to go quiet before each measurement."""
    noise_limit: float
    """A tool-call run during which other processes used more CPU than this (cores) is repeated..."""
    attempts: int
    """...up to this many times in all, keeping the quietest."""


FULL = Plan(
    rounds=5,
    duration=5.0,
    warmup=1.0,
    notify_count=10_000,
    notify_reps=3,
    rss_sessions=1000,
    replay_stages=(1000, 99_000, 900_000),
    replays=80,
    out_dir=ROOT / "docs",
    quiet_wait=10.0,
    noise_limit=0.2,
    attempts=3,
)
QUICK = Plan(
    rounds=1,
    duration=1.0,
    warmup=0.3,
    notify_count=2000,
    notify_reps=1,
    rss_sessions=100,
    replay_stages=(1000, 4000),
    replays=10,
    out_dir=ROOT / "bench" / "results",
    quiet_wait=0.0,
    noise_limit=float("inf"),
    attempts=1,
)


CODE_SNAPSHOT: Path | None = None


def freeze_code(into: Path) -> str:
    """Copy service/ to `into` for the servers to import, and describe what was copied."""
    global CODE_SNAPSHOT
    shutil.copytree(ROOT / "service", into / "service", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    CODE_SNAPSHOT = into
    digest = hashlib.sha256()
    for path in sorted((into / "service").rglob("*.py")):
        digest.update(path.relative_to(into).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{code_version()}; snapshot sha256 {digest.hexdigest()[:12]}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Processes


def _pin(core: int) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(
    name: str, port: int, workdir: Path, *, large_history: bool = False
) -> tuple[list[str], dict[str, str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SERVICE_")}
    # The snapshot of service/ (see `freeze_code`) comes first, so that edits made to the working tree
    # while the benchmark runs do not change what later rounds measure.
    env["PYTHONPATH"] = os.pathsep.join([*([str(CODE_SNAPSHOT)] if CODE_SNAPSHOT else []), str(ROOT)])
    if name in (SERVICE_SQLITE, SERVICE_MEMORY, SERVICE_INLINE):
        env |= {
            "SERVICE_PORT": str(port),
            "SERVICE_STORE": "memory" if name == SERVICE_MEMORY else "sqlite",
            "SERVICE_SQLITE_PATH": str(workdir / "service.db"),
            "SERVICE_LOG_LEVEL": "WARNING",
        }
        if large_history:
            env |= {"SERVICE_MAX_COUNT": "1000000", "SERVICE_MAX_EVENTS_PER_SESSION": "2000000"}
        return [sys.executable, "-m", "bench.inline_dispatch" if name == SERVICE_INLINE else "service"], env
    if name in (EXAMPLE, SDK_FLOOR):
        floor = ["--floor"] if name == SDK_FLOOR else []
        return [sys.executable, "-m", "bench.example_server", "--port", str(port), *floor], env
    if name == BARE:
        return [sys.executable, "-m", "bench.bare_server", "--port", str(port)], env
    raise ValueError(name)


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def native_modules(self) -> list[str]:
        """Which of uvloop and httptools the process has loaded (read from its memory map)."""
        try:
            maps = Path(f"/proc/{self.pid}/maps").read_text()
        except OSError:
            return []
        return [name for name in ("uvloop", "httptools") if f"/{name}/" in maps]


@contextlib.contextmanager
def running(name: str, *, large_history: bool = False) -> Iterator[Server]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        workdir = Path(tmp)
        argv, env = server_command(name, port, workdir, large_history=large_history)
        stderr = (workdir / "server.log").open("wb")
        proc = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=_pin(SERVER_CORE)
        )
        server = Server(name, port, proc, workdir)
        try:
            _wait_ready(server)
            yield server
        finally:
            _stop(proc)
            stderr.close()


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited at start-up:\n{_tail(server)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not start listening within {timeout:g}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(server: Server, lines: int = 15) -> str:
    try:
        return "\n".join((server.workdir / "server.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def loadgen(server: Server, scenario: str, *args: str, timeout: float) -> dict[str, Any] | None:
    """Run one load-generator scenario against `server`; None (and a message) if it failed."""
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        scenario,
        "--port",
        str(server.port),
        "--server-pid",
        str(server.pid),
    ]
    try:
        done = subprocess.run(
            [*argv, *args],
            cwd=ROOT,
            capture_output=True,
            timeout=timeout,
            preexec_fn=_pin(LOADGEN_CORE),
            check=False,
        )
    except subprocess.TimeoutExpired:
        log(f"  ! {server.name} {scenario} {' '.join(args)}: timed out after {timeout:g}s")
        return None
    if done.returncode != 0 or not done.stdout.strip():
        err = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        log(f"  ! {server.name} {scenario} {' '.join(args)}: failed ({'; '.join(err)})")
        if not server.alive():
            log(f"  ! {server.name} is gone (exit {server.proc.returncode}):\n{_tail(server)}")
        return None
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def wait_quiet(limit: float, threshold: float = 0.25) -> float:
    """Wait (up to `limit` s) until the machine is nearly idle; return the busy fraction last seen (in cores)."""
    if limit <= 0:
        return float("nan")
    deadline = time.monotonic() + limit
    busy = 0.0
    while True:
        busy = float(sum(psutil.cpu_percent(interval=0.5, percpu=True))) / 100
        if busy <= threshold or time.monotonic() >= deadline:
            return busy
        time.sleep(0.5)


# The measurements


@dataclass
class Results:
    plan: Plan
    tools: dict[str, dict[int, list[dict[str, Any]]]] = field(default_factory=dict)
    notify: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rss: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    replay: dict[str, dict[str, Any]] = field(default_factory=dict)
    native: dict[str, list[str]] = field(default_factory=dict)
    busy_before: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    code: str = ""
    machine: dict[str, str] = field(default_factory=dict)
    generated: str = ""


def measure_tools(results: Results, server: Server, session_counts: Sequence[int] = SESSIONS) -> None:
    plan = results.plan
    for sessions in session_counts:
        # Sessions in a closed loop finish their calls in waves: a longer window keeps 100 of them from
        # quantizing the count.
        duration = plan.duration * (2 if sessions >= 100 else 1)
        args = ["--sessions", str(sessions), "--duration", str(duration), "--warmup", str(plan.warmup)]
        if server.name == BARE:
            args.append("--raw")
        result = None
        for _ in range(plan.attempts):
            results.busy_before.append(wait_quiet(plan.quiet_wait))
            attempt = loadgen(server, "tools", *args, timeout=duration + plan.warmup + 120)
            if attempt is None:
                break
            if result is None or attempt["other_cpu"] < result["other_cpu"]:
                result = attempt
            if attempt["other_cpu"] <= plan.noise_limit:
                break
            results.retries += 1
        if result is None:
            results.failures.append(f"{server.name} tools x{sessions}")
            continue
        results.tools.setdefault(server.name, {}).setdefault(sessions, []).append(result)
        log(
            f"  {server.name:15} {sessions:>3} sessions: {result['calls_per_s']:8.1f} calls/s  "
            f"p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
            f"cpu server {result.get('server_cpu', 0):.2f} loadgen {result['loadgen_cpu']:.2f} "
            f"other {result.get('other_cpu', 0):.2f}  errors {result['errors']}"
        )


def _measure_once(results: Results, server: Server, scenario: str, *args: str, timeout: float) -> dict[str, Any] | None:
    """Wait for quiet, run one load-generator scenario, and record a failure by name."""
    results.busy_before.append(wait_quiet(results.plan.quiet_wait))
    result = loadgen(server, scenario, *args, timeout=timeout)
    if result is None:
        results.failures.append(f"{server.name} {scenario}")
    return result


def measure_notify(results: Results, server: Server) -> None:
    plan = results.plan
    args = ["--count", str(plan.notify_count), "--reps", str(plan.notify_reps)]
    if (result := _measure_once(results, server, "notify", *args, timeout=600)) is None:
        return
    results.notify.setdefault(server.name, []).append(result)
    log(
        f"  {server.name:15} notifications: {result['notifications_per_s']:8.0f}/s  "
        f"cpu server {result.get('server_cpu', 0):.2f} loadgen {result['loadgen_cpu']:.2f}  errors {result['errors']}"
    )


def measure_rss(results: Results, server: Server) -> None:
    args = ["--sessions", str(results.plan.rss_sessions)]
    if (result := _measure_once(results, server, "rss", *args, timeout=600)) is None:
        return
    results.rss.setdefault(server.name, []).append(result)
    log(
        f"  {server.name:15} RSS: {result['rss_before_mb']:.1f} -> {result['rss_after_mb']:.1f} MB, "
        f"{result['rss_per_session_kb']:.1f} KB/session ({result['alive']} alive)"
    )


def measure_replay(results: Results, server: Server) -> None:
    plan = results.plan
    stages = [str(count) for count in plan.replay_stages]
    args = ["--stages", *stages, "--replays", str(plan.replays), "--settle", "1.0"]
    if (result := _measure_once(results, server, "replay", *args, timeout=3600)) is None:
        return
    results.replay[server.name] = result
    for stage in result["stages"]:
        if "error" in stage:
            log(f"  {server.name:15} replay @{stage['stored']}: {stage['error']}")
            continue
        log(
            f"  {server.name:15} replay @{stage['stored']:>8} events: p50 {stage['p50_ms']:.3f} ms  "
            f"p99 {stage['p99_ms']:.3f} ms  ({stage['failed']} failed; filled at "
            f"{stage['fill_notifications_per_s']:.0f}/s)"
        )


def rotated(names: Sequence[str], by: int) -> list[str]:
    by %= len(names)
    return [*names[by:], *names[:by]]


def run(plan: Plan) -> Results:
    results = Results(plan)
    for round_no in range(plan.rounds):
        order = rotated(EVERY_SERVER, round_no)
        log(f"round {round_no + 1}/{plan.rounds}: {', '.join(order)}")
        for name in order:
            try:
                with running(name) as server:
                    results.native[name] = server.native_modules()
                    if name in SDK_LIMIT_SERVERS:
                        measure_tools(results, server, (1,))
                        continue
                    measure_tools(results, server)
                    if name != BARE:
                        measure_notify(results, server)
                if name != BARE:
                    with running(name) as server:
                        measure_rss(results, server)
            except RuntimeError as exc:
                log(f"  ! {name}: {exc}")
                results.failures.append(f"{name} round {round_no + 1}: {exc}")
    log("replay")
    for name in rotated(MCP_SERVERS, plan.rounds):
        try:
            with running(name, large_history=True) as server:
                measure_replay(results, server)
        except RuntimeError as exc:
            log(f"  ! {name}: {exc}")
            results.failures.append(f"{name} replay: {exc}")
    return results


# Summaries


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _cpu_per_call(run: dict[str, Any]) -> float:
    return 1e6 * float(run["server_cpu"]) / float(run["calls_per_s"])


def _tools_median(results: Results, name: str, sessions: int, value: Callable[[dict[str, Any]], float]) -> float:
    """The median over rounds of one figure of a server's tool-call runs at a session count."""
    return _median([value(run) for run in results.tools.get(name, {}).get(sessions, [])])


@dataclass(frozen=True)
class Target:
    ratio: float | None  # service-sqlite / example must be >= (higher is better) or <= this
    higher_is_better: bool
    absolute: float | None = None  # or: service-sqlite must be <= this
    note: str = ""

    def describe(self) -> str:
        if self.absolute is not None:
            return f"<= {self.absolute:g}"
        assert self.ratio is not None
        return f"{'>=' if self.higher_is_better else '<='} {self.ratio:.3g}x{self.note}"

    def check(self, ours: float, theirs: float) -> bool | None:
        if self.absolute is not None:
            return None if ours != ours else ours <= self.absolute
        assert self.ratio is not None
        if ours != ours or theirs != theirs or theirs == 0:
            return None
        ratio = ours / theirs
        return ratio >= self.ratio if self.higher_is_better else ratio <= self.ratio


@dataclass
class Row:
    metric: str
    values: dict[str, float]
    target: Target | None = None
    unit: str = ""

    def ratio(self, name: str) -> float:
        ours, theirs = self.values.get(name, float("nan")), self.values.get(EXAMPLE, float("nan"))
        return ours / theirs if theirs == theirs and theirs else float("nan")

    def verdict(self) -> str:
        if self.target is None:
            return ""
        ok = self.target.check(self.values.get(SERVICE_SQLITE, float("nan")), self.values.get(EXAMPLE, float("nan")))
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def summarize(results: Results) -> list[Row]:
    rows: list[Row] = []

    def tools_metric(key: str, sessions: int) -> dict[str, float]:
        return {name: _tools_median(results, name, sessions, itemgetter(key)) for name in MCP_SERVERS}

    for sessions in SESSIONS:
        rows.append(
            Row(f"tool calls/s, {sessions} sessions", tools_metric("calls_per_s", sessions), Target(1.5, True), "/s")
        )
    for sessions in SESSIONS:
        rows.append(Row(f"p50 latency, {sessions} sessions", tools_metric("p50_ms", sessions), None, "ms"))
    for sessions in SESSIONS:
        rows.append(
            Row(f"p99 latency, {sessions} sessions", tools_metric("p99_ms", sessions), Target(0.5, False), "ms")
        )
    # The same comparison in CPU time, which other processes on the machine disturb far less than wall time.
    for sessions in SESSIONS:
        per_call = {name: _tools_median(results, name, sessions, _cpu_per_call) for name in MCP_SERVERS}
        rows.append(
            Row(
                f"server CPU per tool call, {sessions} sessions",
                per_call,
                Target(1 / 1.5, False, note=" (= 1.5x calls/s)"),
                "us",
            )
        )
    rows.append(
        Row(
            f"notifications/s (count={results.plan.notify_count})",
            {name: _median([r["notifications_per_s"] for r in results.notify.get(name, [])]) for name in MCP_SERVERS},
            Target(1.2, True),
            "/s",
        )
    )
    rows.append(
        Row(
            "server CPU per notification",
            {
                name: _median([1e6 * r["server_cpu"] / r["notifications_per_s"] for r in results.notify.get(name, [])])
                for name in MCP_SERVERS
            },
            Target(1 / 1.2, False, note=" (= 1.2x /s)"),
            "us",
        )
    )
    rows.append(
        Row(
            f"RSS per session ({results.plan.rss_sessions} GET streams)",
            {name: _median([r["rss_per_session_kb"] for r in results.rss.get(name, [])]) for name in MCP_SERVERS},
            Target(0.7, False),
            "KB",
        )
    )
    for index, count in enumerate(_cumulative(results.plan.replay_stages)):
        is_last = index == len(results.plan.replay_stages) - 1
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            values = {}
            for name in MCP_SERVERS:
                stages = results.replay.get(name, {}).get("stages", [])
                values[name] = stages[index].get(key, float("nan")) if index < len(stages) else float("nan")
            target = Target(None, False, absolute=2.0) if is_last and label == "p50" else None
            rows.append(Row(f"replay {label}, last 10 of {_count_label(count)} events", values, target, "ms"))
    return rows


def _cumulative(stages: Sequence[int]) -> list[int]:
    total, out = 0, []
    for count in stages:
        total += count + 2
        out.append(total)
    return out


def _count_label(count: int) -> str:
    for size, suffix in ((1_000_000, "M"), (1000, "k")):
        if count >= size:
            return f"{count / size:.3g}{suffix}"
    return str(count)


def _fmt(value: float) -> str:
    if value != value:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def _fmt_ratio(value: float) -> str:
    """Three decimals: at two, 1.4992x would print as 1.50x next to a FAIL against ">= 1.5x"."""
    return f"{value:.3f}x" if value == value and abs(value) < 10 else _fmt(value) + "x"


def table(rows: Sequence[Row]) -> list[str]:
    header = ["metric", "unit", SERVICE_SQLITE, SERVICE_MEMORY, EXAMPLE, "sqlite/example", "memory/example", "target"]
    header.append("sqlite vs target")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in rows:
        cells = [
            row.metric,
            row.unit,
            *(_fmt(row.values.get(name, float("nan"))) for name in MCP_SERVERS),
            _fmt_ratio(row.ratio(SERVICE_SQLITE)),
            _fmt_ratio(row.ratio(SERVICE_MEMORY)),
            row.target.describe() + (" ms" if row.target and row.target.absolute is not None else "")
            if row.target
            else "",
            row.verdict(),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def calibration_lines(results: Results) -> list[str]:
    lines = [
        "| sessions | bare SSE endpoint calls/s | loadgen CPU (bare) | best MCP server calls/s | headroom |"
        " loadgen CPU during MCP runs (max) |",
        "|---|---|---|---|---|---|",
    ]
    for sessions in SESSIONS:
        bare = results.tools.get(BARE, {}).get(sessions, [])
        bare_rate = _median([r["calls_per_s"] for r in bare])
        bare_cpu = _median([r["loadgen_cpu"] for r in bare])
        mcp = [r for name in MCP_SERVERS for r in results.tools.get(name, {}).get(sessions, [])]
        best = max(
            (_tools_median(results, name, sessions, itemgetter("calls_per_s")) for name in MCP_SERVERS),
            default=float("nan"),
        )
        cpu = max((r["loadgen_cpu"] for r in mcp), default=float("nan"))
        headroom = _fmt(bare_rate / best) + "x"
        lines.append(f"| {sessions} | {_fmt(bare_rate)} | {bare_cpu:.2f} | {_fmt(best)} | {headroom} | {cpu:.2f} |")
    return lines


def sdk_limit_lines(results: Results) -> list[str]:
    """Tool calls at 1 session: the service and the example against what the SDK leaves room for."""
    lines = [
        "| server | calls/s | p50 ms | p99 ms | CPU per call, us | calls/s vs example | p99 vs example |",
        "|---|---|---|---|---|---|---|",
    ]
    values: dict[str, Callable[[dict[str, Any]], float]] = {
        "rate": itemgetter("calls_per_s"),
        "p50": itemgetter("p50_ms"),
        "p99": itemgetter("p99_ms"),
        "cpu": _cpu_per_call,
    }
    medians = {
        name: {key: _tools_median(results, name, 1, value) for key, value in values.items()}
        for name in (EXAMPLE, SERVICE_SQLITE, *SDK_LIMIT_SERVERS)
    }
    example = medians[EXAMPLE]
    for name, m in medians.items():
        lines.append(
            f"| {name} | {_fmt(m['rate'])} | {_fmt(m['p50'])} | {_fmt(m['p99'])} | {_fmt(m['cpu'])} | "
            f"{_fmt_ratio(m['rate'] / example['rate'])} | {_fmt_ratio(m['p99'] / example['p99'])} |"
        )
    return lines


def noise_lines(results: Results) -> list[str]:
    other = [
        r["other_cpu"]
        for per_server in results.tools.values()
        for per_sessions in per_server.values()
        for r in per_sessions
        if "other_cpu" in r
    ]
    server = {
        name: _median([r["server_cpu"] for per in results.tools.get(name, {}).values() for r in per])
        for name in EVERY_SERVER
    }
    lines = [
        f"- CPU used by other processes on the machine during the tool-call runs: median {_median(other):.2f} cores, "
        f"max {max(other, default=float('nan')):.2f} (measured as all busy CPU minus server and load generator).",
        "- Server CPU during the tool-call runs (cores, median over runs): "
        + ", ".join(f"{name} {value:.2f}" for name, value in server.items())
        + ".",
    ]
    if results.plan.attempts > 1:
        lines.append(
            f"- Tool-call runs repeated because other processes used more than {results.plan.noise_limit:g} cores "
            f"meanwhile: {results.retries} (up to {results.plan.attempts} attempts each, the quietest kept)."
        )
    if results.failures:
        lines.append(f"- Failed measurements (left out of the medians): {'; '.join(results.failures)}.")
    return lines


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "service"], cwd=ROOT, capture_output=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = len(dirty.stdout.decode().splitlines())
    state = f"with {changed} uncommitted change(s) under service/" if changed else "clean under service/"
    return f"commit {head.stdout.decode().strip()}, {state}"


def machine_info() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
    }


# The section `bench.soak --plot ... --markdown` writes into the report; a new report keeps it.
SOAK_SECTION = ("<!-- bench.soak -->", "<!-- /bench.soak -->")


def with_section(text: str, section: str, markers: tuple[str, str] = SOAK_SECTION) -> str:
    """`text` with the section between `markers` replaced by `section` (or added at the end)."""
    begin, end = markers
    block = f"{begin}\n{section.strip()}\n{end}\n"
    if begin in text and end in text:
        return text[: text.index(begin)] + block + text[text.index(end) + len(end) :].lstrip("\n")
    return text.rstrip("\n") + "\n\n" + block


def kept_section(path: Path, markers: tuple[str, str] = SOAK_SECTION) -> str | None:
    """The section between `markers` in the report at `path`, if there is one."""
    text = path.read_text() if path.exists() else ""
    begin, end = markers
    if begin not in text or end not in text:
        return None
    return text[text.index(begin) + len(begin) : text.index(end)]


def write_markdown(results: Results, rows: Sequence[Row], path: Path, plot: Path | None) -> None:
    plan = results.plan
    info = results.machine
    native = ", ".join(f"{name}: {'+'.join(mods) or 'neither'}" for name, mods in sorted(results.native.items()))
    text = [
        "# Benchmarks: this service against the SDK's simple streamable HTTP example",
        "",
        f"Generated by `uv run python -m bench.run` on {results.generated}"
        + f". Medians over {plan.rounds} rounds (replay: one fill per server).",
        "",
        "- **service-sqlite**: `python -m service` with `SERVICE_STORE=sqlite` (the default, durable store).",
        "- **service-memory**: the same with `SERVICE_STORE=memory`.",
        "- **example**: `bench/example_server.py`, a re-implementation of the SDK's `simple-streamablehttp` example "
        "(low-level `Server`, `StreamableHTTPSessionManager`, the example's in-memory event store: 100 events per "
        "stream id, message objects, replay by scanning). Unlike the SDK's example, its tool does not end each "
        "call with a `notifications/resources/updated` (about 330 us of server CPU per call here, work the service "
        "does not do); `bench/example_server.py --resource-updated` puts it back.",
        "",
        *table(rows),
        "",
        "Ratios are service/example; the targets compare service-sqlite with the example "
        "(replay: an absolute bound). Higher is better for rates, lower for latency and memory.",
        "",
        "Each target, what limits the ones not met, and where the time goes: "
        "[performance.md](performance.md) (`uv run python -m bench.profile_server`).",
        "",
    ]
    if plot is not None:
        text += [f"![throughput and latency]({plot.name})", ""]
    text += [
        "## Where the SDK sets the limit: tool calls at 1 session",
        "",
        f"Measured in the same rounds. **{SERVICE_INLINE}** is the service with each request handled in its "
        "own POST's task (`bench/inline_dispatch.py`, through the SDK dispatcher's private members): what an SDK "
        "entry point for that would buy; the SDK's dispatcher instead reads each request in a task of its own "
        f"and spawns another to handle it. **{SDK_FLOOR}** is the least work the SDK's session manager and "
        "low-level server do for a call (`bench/example_server.py --floor`: JSON answers, so the call's "
        "notification is dropped; no event store; the collector tuned as the service tunes it): a reference "
        "for servers built on them, doing less than the benchmark's calls require.",
        "",
        *sdk_limit_lines(results),
        "",
        "## Load generator ceiling",
        "",
        "The same load generator against a bare Starlette endpoint (`bench/bare_server.py`) that answers each POST "
        "with a three-event SSE response, under the same uvicorn settings and pinning:",
        "",
        *calibration_lines(results),
        "",
        "## Noise",
        "",
        *noise_lines(results),
        "",
        "## Settings",
        "",
        f"- Servers pinned to core {SERVER_CORE}, load generator to core {LOADGEN_CORE} (`os.sched_setaffinity`); "
        "fresh server processes for every round, in rotated order; each measurement first waits (up to "
        f"{plan.quiet_wait:g} s) for other processes to use less than a quarter of a core.",
        f"- Tool calls: `count=1, interval=0`, closed loop per session, {plan.warmup:g} s warm-up then "
        f"{plan.duration:g} s measured ({2 * plan.duration:g} s at 100 sessions); latency = POST sent to end of "
        "its SSE response; one keep-alive connection per session; protocol 2025-11-25 with `Mcp-Session-Id`.",
        f"- Notifications: one call with `count={plan.notify_count}`, `interval=0`, median of {plan.notify_reps} "
        "calls per round.",
        f"- RSS: server RSS before and after opening {plan.rss_sessions} sessions that each hold a GET stream "
        "(10 warm-up sessions first; fresh server process).",
        f"- Replay: one session calls the tool with counts {', '.join(map(str, plan.replay_stages))} in turn; after "
        f"each, {plan.replays} GETs with `Last-Event-ID` set to the 11th-last event id of that call's stream, timed "
        "until the 10th replayed event arrives (each on a new connection, opened before the clock starts). For the "
        "service: `SERVICE_MAX_COUNT=1000000`, `SERVICE_MAX_EVENTS_PER_SESSION=2000000`. The example keeps 100 events "
        "per stream, so it replays from what it kept.",
        "- Service environment: `SERVICE_LOG_LEVEL=WARNING`, everything else default (SQLite in a fresh temporary "
        "directory on the same disk). The service's `uvicorn.Server` (`service/cli.py`) uses uvicorn's `auto` loop "
        "and HTTP implementation; native modules seen loaded in each server's memory map: " + native + ".",
        "- The example and the bare server run uvicorn with `loop=uvloop`, `http=httptools`, access log off; the "
        "service keeps uvicorn's access log on but at WARNING level, so its records are dropped.",
        "",
        "## Machine and code",
        "",
        f"- code measured: service/ as of the start of the run ({results.code}); the servers import that copy",
        *(f"- {key}: {value}" for key, value in info.items()),
        "",
    ]
    report = "\n".join(text)
    if (soak := kept_section(path)) is not None:
        report = with_section(report, soak)
    path.write_text(report)


def write_plot(results: Results, rows: Sequence[Row], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot")
        return False
    colors = {SERVICE_SQLITE: "tab:blue", SERVICE_MEMORY: "tab:green", EXAMPLE: "tab:orange"}
    by_metric = {row.metric: row for row in rows}
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    width = 0.27
    x = list(range(len(SESSIONS)))

    def grouped_bars(ax: Any, metric: str, ylabel: str, title: str) -> None:
        for offset, name in enumerate(MCP_SERVERS):
            values = [by_metric[metric.format(s=s)].values[name] for s in SESSIONS]
            ax.bar([i + (offset - 1) * width for i in x], values, width, label=name, color=colors[name])
        ax.set_xticks(x, [str(s) for s in SESSIONS])
        ax.set_xlabel("concurrent sessions")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)

    grouped_bars(axes[0][0], "tool calls/s, {s} sessions", "tool calls/s", "Throughput (count=1, interval=0)")
    grouped_bars(
        axes[0][2], "server CPU per tool call, {s} sessions", "server CPU per call (us)", "Server CPU per tool call"
    )

    ax = axes[0][1]
    for name in MCP_SERVERS:
        p50 = [by_metric[f"p50 latency, {s} sessions"].values[name] for s in SESSIONS]
        p99 = [by_metric[f"p99 latency, {s} sessions"].values[name] for s in SESSIONS]
        ax.plot(SESSIONS, p50, "o-", color=colors[name], label=f"{name} p50")
        ax.plot(SESSIONS, p99, "s--", color=colors[name], label=f"{name} p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent sessions")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Tool-call latency")
    ax.legend(fontsize=8)

    def server_bars(ax: Any, row: Row, ylabel: str, title: str) -> None:
        ax.bar(range(len(MCP_SERVERS)), [row.values[n] for n in MCP_SERVERS], color=[colors[n] for n in MCP_SERVERS])
        ax.set_xticks(range(len(MCP_SERVERS)), list(MCP_SERVERS))
        ax.set_ylabel(ylabel)
        ax.set_title(title)

    notify = next(row for row in rows if row.metric.startswith("notifications/s"))
    rss = next(row for row in rows if row.metric.startswith("RSS per session"))
    server_bars(axes[1][0], notify, "notifications/s", f"One call, count={results.plan.notify_count}")
    server_bars(axes[1][1], rss, "KB per session", f"Server RSS per session ({results.plan.rss_sessions} GET streams)")

    ax = axes[1][2]
    stored = _cumulative(results.plan.replay_stages)
    for name in MCP_SERVERS:
        stages = results.replay.get(name, {}).get("stages", [])
        values = [stage.get("p50_ms", float("nan")) for stage in stages]
        ax.plot(stored[: len(values)], values, "o-", color=colors[name], label=name)
    ax.axhline(2.0, color="grey", linestyle=":", label="target (2 ms)")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("events stored in the session")
    ax.set_ylabel("replay p50 (ms), last 10 events")
    ax.set_title("Resumption latency")
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def dump(results: Results, path: Path) -> None:
    data = {item.name: getattr(results, item.name) for item in fields(Results)}
    data["plan"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(results.plan).items()}
    path.write_text(json.dumps(data, indent=1))


def load(path: Path) -> Results:
    """A run written by `dump`, to render again (`--render`)."""
    data = json.loads(path.read_text())
    stored = data.pop("plan")
    plan = Plan(**{**stored, "out_dir": Path(stored["out_dir"]), "replay_stages": tuple(stored["replay_stages"])})
    # JSON keys are strings: the session counts were ints.
    data["tools"] = {name: {int(sessions): runs for sessions, runs in by.items()} for name, by in data["tools"].items()}
    data.setdefault("generated", "an unrecorded date")
    return Results(plan, **{item.name: data[item.name] for item in fields(Results) if item.name in data})


def report(results: Results, out_dir: Path) -> None:
    """Write benchmarks.{md,png,json} to `out_dir` and print the tables."""
    rows = summarize(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "benchmarks.png"
    has_plot = write_plot(results, rows, plot)
    write_markdown(results, rows, out_dir / "benchmarks.md", plot if has_plot else None)
    dump(results, out_dir / "benchmarks.json")
    print("\n".join(table(rows)))
    print()
    print("\n".join(calibration_lines(results)))
    print()
    print("\n".join(noise_lines(results)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one short round, small sizes")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--out", type=Path, help="where to write benchmarks.{md,png,json}")
    parser.add_argument("--render", type=Path, help="measure nothing: write the report again from a benchmarks.json")
    args = parser.parse_args(argv)
    if args.render:
        results = load(args.render)
        report(results, args.out or args.render.parent)
        return
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = Plan(**{**vars(plan), "rounds": args.rounds})
    if args.out:
        plan = Plan(**{**vars(plan), "out_dir": args.out})
    if len(os.sched_getaffinity(0)) < 2 or (os.cpu_count() or 1) < 2:
        raise SystemExit("bench.run needs two cores (server on core 0, load generator on core 1)")
    os.sched_setaffinity(0, {LOADGEN_CORE})  # keep this orchestrator off the server's core
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-code-") as snapshot:
        code = freeze_code(Path(snapshot))
        log(f"measuring {code}")
        results = run(plan)
        results.code = code
    results.machine = machine_info()
    results.generated = time.strftime("%Y-%m-%d %H:%M %Z")
    report(results, plan.out_dir)
    print(f"\nwrote {plan.out_dir / 'benchmarks.md'} in {time.monotonic() - started:.0f} s")
    if args.quick and (problems := smoke_problems(results)):
        raise SystemExit("smoke run failed: " + "; ".join(problems))


def smoke_problems(results: Results) -> list[str]:
    """What makes a smoke run fail: a measurement that did not complete, or calls answered with errors."""
    errors = [
        f"{name} tools x{sessions}: {result['errors']} errors"
        for name, by_sessions in results.tools.items()
        for sessions, runs in by_sessions.items()
        for result in runs
        if result["errors"]
    ]
    return [*results.failures, *errors]


if __name__ == "__main__":
    main()
