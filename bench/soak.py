"""Soak benches: many MCP sessions running notification jobs back to back for a while.

The default soak: each session calls `start-notification-stream` again and again (random
count and interval) with the SDK's client and checks that every notification of every call
arrived, once and in order. Prints the service's RSS at the start and the end, jobs run,
notifications lost, and errors.

`--sustained`: retention under full-speed load. `--sessions` clients (bench.loadgen's)
call the tool back to back (count=1, interval=0), each reconnecting with a new session
every `--session-seconds` as real clients come and go, with short retentions (`--retention`
for jobs and ended sessions, `--stream-retention` for a live session's finished streams).
`--long-lived`: each client keeps one session for the whole run instead, as desktop clients
do, so nothing is freed by sessions ending. Every `--sample` seconds it prints calls/s, the
store's files, its rows (from /healthz) and the RSS; at the end the slope of each over the
last half of the run, which is what shows a plateau (and, for SQLite, the rows counted in the
file). `--no-purge` keeps everything. The server runs on core 0 and the clients on core 1.
The run stops by itself after `--seconds` (or `--minutes`).

`--sustained --compare`: what purging costs, as a ratio of calls/s that the machine's drift
does not blur (see `compare`): `--rounds` windows of `--window` seconds each way.

    uv run python -m bench.soak                      # 50 sessions, 2 minutes
    uv run python -m bench.soak --sessions 5 --seconds 10
    uv run python -m bench.soak --sustained --store sqlite --seconds 600 --out /tmp/sqlite.json
    uv run python -m bench.soak --sustained --long-lived --retention 5 --stream-retention 5 --minutes 10 --store memory
    uv run python -m bench.soak --sustained --store sqlite --seconds 600 --no-purge --out /tmp/sqlite-keep.json
    uv run python -m bench.soak --sustained --compare --store sqlite --out /tmp/sqlite-compare.json
    uv run python -m bench.soak --plot docs/retention/*.json --to docs/retention.png --markdown docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx
import psutil

from bench.loadgen.session import McpSession
from bench.report import with_section
from harness.clients import Received, mcp_client
from harness.service import ServiceProcess, running_service
from service.tools.notification_stream import TOOL_NAME


@dataclass
class Tally:
    jobs: int = 0
    notifications: int = 0
    lost: int = 0
    errors: int = 0


async def session_loop(url: str, deadline: float, rng: random.Random, tally: Tally) -> None:
    received = Received()
    try:
        async with mcp_client(url, received=received) as client:
            while time.monotonic() < deadline:
                count = rng.randint(10, 100)
                received.logs.clear()
                caller = f"soak-{rng.random():.6f}"
                result = await client.call_tool(
                    TOOL_NAME, {"interval": rng.choice([0, 0.005, 0.01]), "count": count, "caller": caller}
                )
                expected = [f"Notification {i}/{count} for {caller}" for i in range(1, count + 1)]
                tally.jobs += 1
                tally.notifications += len(received.logs)
                tally.lost += len(set(expected) - set(received.logs))
                if result.is_error or received.logs != expected:
                    tally.errors += 1
    except Exception as exc:  # a session that dies is an error, and the bench goes on
        print(f"session failed: {exc!r}")
        tally.errors += 1


async def soak(args: argparse.Namespace) -> int:
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_service(Path(workdir), SERVICE_STORE=args.store, SERVICE_LOG_LEVEL="ERROR") as service,
    ):
        assert service.proc is not None
        process = psutil.Process(service.proc.pid)
        rss_start = process.memory_info().rss
        tally = Tally()
        rng = random.Random(args.seed)
        started = time.monotonic()
        deadline = started + args.seconds
        peak = rss_start
        async with anyio.create_task_group() as tg:
            for _ in range(args.sessions):
                tg.start_soon(session_loop, service.mcp_url, deadline, random.Random(rng.random()), tally)
            while time.monotonic() < deadline:
                await anyio.sleep(1)
                peak = max(peak, process.memory_info().rss)
        elapsed = time.monotonic() - started
        rss_end = process.memory_info().rss
    mib = 2**20
    print(f"store                 {args.store}")
    print(f"sessions              {args.sessions}")
    print(f"duration              {elapsed:.0f} s")
    print(f"jobs run              {tally.jobs}")
    print(f"notifications         {tally.notifications} ({tally.notifications / elapsed:.0f}/s)")
    print(f"notifications lost    {tally.lost}")
    print(f"errors                {tally.errors}")
    print(f"RSS start / peak / end  {rss_start / mib:.1f} / {peak / mib:.1f} / {rss_end / mib:.1f} MiB")
    return 1 if tally.lost or tally.errors else 0


@dataclass
class Sample:
    t: float
    calls_per_s: float
    file_mb: float
    jobs: int
    events: int
    rss_mb: float


@dataclass
class Sustained:
    store: str
    purge: bool
    settings: dict[str, str]
    seconds: float
    sessions: int = 10
    session_seconds: float | None = 30.0
    """How long each client keeps a session; None: the whole run (`--long-lived`)."""
    sample: float = 30.0
    calls: int = 0
    errors: int = 0
    samples: list[Sample] = field(default_factory=list)
    rows_in_file: int | None = None
    """SQLite: the events table's rows counted in the file after the run (a check of /healthz's counter)."""

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds


def _store_mb(workdir: Path) -> float:
    return sum(path.stat().st_size for path in workdir.glob("service.db*")) / 2**20


def _slope_per_min(samples: list[Sample], value: str) -> float:
    """Least-squares slope over the last half of the samples, per minute."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return float("nan")
    xs = [s.t / 60 for s in half]
    ys = [float(getattr(s, value)) for s in half]
    return statistics.linear_regression(xs, ys).slope


class Calls(Protocol):
    calls: int
    errors: int


async def _calls(port: int, deadline: float, args: argparse.Namespace, tally: Calls) -> None:
    """`--sessions` clients calling the tool back to back until `deadline`, each a new session every so often."""

    async def client(index: int) -> None:
        while time.monotonic() < deadline:
            session = await McpSession.open("127.0.0.1", port)
            rotate = deadline if args.long_lived else min(deadline, time.monotonic() + args.session_seconds)
            while time.monotonic() < rotate:
                outcome = await session.call_tool(1, 0.0, f"sustained-{index}")
                tally.calls += 1
                tally.errors += not outcome.ok
            await session.delete()
            session.conn.close()

    await asyncio.gather(*(client(i) for i in range(args.sessions)))


def _settings(args: argparse.Namespace, purge: bool) -> dict[str, str]:
    keep = str(args.retention if purge else 10**9)
    settings = {
        "SERVICE_STORE": args.store,
        "SERVICE_LOG_LEVEL": "ERROR",
        "SERVICE_EVENT_RETENTION": keep,
        "SERVICE_JOB_RETENTION": keep,
        "SERVICE_MAX_STORED_JOBS": "0",
    }
    if args.stream_retention is not None:  # unset: the service's default
        settings["SERVICE_STREAM_RETENTION"] = str(args.stream_retention if purge else 10**9)
    return settings


def _rows_in_file(workdir: Path) -> int | None:
    """The events table's rows, counted in the SQLite file (read-only; after the load, as it scans them all)."""
    path = workdir / "service.db"
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (rows,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
    finally:
        db.close()
    return int(rows)


def _pin(service: ServiceProcess) -> psutil.Process:
    """The server's threads on core 0, this process (the clients) on core 1."""
    assert service.proc is not None
    process = psutil.Process(service.proc.pid)
    for thread in process.threads():  # every thread: affinity is per thread, and threads inherit it
        os.sched_setaffinity(thread.id, {0})
    os.sched_setaffinity(0, {1})
    return process


def _freeze(service: ServiceProcess, frozen: bool) -> None:
    assert service.proc is not None
    service.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)


async def sustained(args: argparse.Namespace) -> int:
    settings = _settings(args, purge=not args.no_purge)
    result = Sustained(
        args.store,
        not args.no_purge,
        settings,
        args.seconds,
        sessions=args.sessions,
        session_seconds=None if args.long_lived else args.session_seconds,
        sample=args.sample,
    )
    lives = "the whole run" if args.long_lived else f"{args.session_seconds:g} s"
    print(f"{args.sessions} clients, a session each for {lives}; settings: {settings}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, running_service(Path(tmp), **settings) as service:
        process = _pin(service)
        started = time.monotonic()
        deadline = started + args.seconds
        calls_at_sample = 0

        async def sampler() -> None:
            nonlocal calls_at_sample
            async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as http:
                while time.monotonic() < deadline:
                    await asyncio.sleep(min(args.sample, max(0.0, deadline - time.monotonic())))
                    health = (await http.get("/healthz")).json()
                    t = time.monotonic() - started
                    previous = result.samples[-1].t if result.samples else 0.0
                    sample = Sample(
                        t=t,
                        calls_per_s=(result.calls - calls_at_sample) / (t - previous),
                        file_mb=_store_mb(Path(tmp)) if args.store == "sqlite" else health["store_bytes"] / 2**20,
                        jobs=health["stored_jobs"],
                        events=health["stored_events"],
                        rss_mb=process.memory_info().rss / 2**20,
                    )
                    calls_at_sample = result.calls
                    result.samples.append(sample)
                    print(
                        f"t={sample.t:4.0f}s  {sample.calls_per_s:6.0f} calls/s  store {sample.file_mb:7.1f} MB"
                        f"  jobs {sample.jobs:8d}  events {sample.events:9d}  RSS {sample.rss_mb:6.1f} MB",
                        flush=True,
                    )

        try:
            # Bounded even if the service stops answering: a call in flight at the deadline gets a minute.
            await asyncio.wait_for(
                asyncio.gather(sampler(), _calls(service.port, deadline, args, result)), args.seconds + 60
            )
        except TimeoutError:
            print("the load did not stop within a minute of the deadline: calls hung", flush=True)
            result.errors += 1
        result.seconds = time.monotonic() - started
        if args.store == "sqlite":
            result.rows_in_file = await anyio.to_thread.run_sync(_rows_in_file, Path(tmp))
    print(
        f"store {args.store}, purge {'on' if result.purge else 'off'}, {args.sessions} sessions for {lives}, "
        f"{result.seconds:.0f} s"
    )
    print(f"calls/s over the run   {result.calls_per_s:.0f} ({result.calls} calls, {result.errors} errors)")
    if result.rows_in_file is not None and result.samples:
        print(f"events in the file after the run: {result.rows_in_file} (last sample: {result.samples[-1].events})")
    print("slope over the last half, per minute:")
    for value, unit in (("file_mb", "MB"), ("jobs", "jobs"), ("events", "events"), ("rss_mb", "MB RSS")):
        print(f"  {value:8s} {_slope_per_min(result.samples, value):+12.2f} {unit}/min")
    if args.out:
        await anyio.Path(args.out).write_text(json.dumps(asdict(result), indent=1))
    return 1 if result.errors else 0


@dataclass
class Compared:
    """Calls/s of each window of a `--compare` run, with purge and without, in the order they ran."""

    store: str
    window: float
    rounds: int
    pairs: int = 1
    on: list[float] = field(default_factory=list)
    off: list[float] = field(default_factory=list)
    cpu_on: list[tuple[float, float]] = field(default_factory=list)
    """Per window: microseconds of CPU per call on the event loop's thread, and on every other thread."""
    cpu_off: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0

    @property
    def ratios(self) -> list[float]:
        """Each round's calls/s with purge over without."""
        return [on / off for on, off in zip(self.on, self.off, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.fmean(self.on) / statistics.fmean(self.off)


@dataclass
class Window:
    calls: int = 0
    errors: int = 0


def _cpu(process: psutil.Process) -> tuple[float, float]:
    """CPU seconds so far of the process's main thread (the event loop) and of all its other threads."""
    total = process.cpu_times()
    loop = next((t.user_time + t.system_time for t in process.threads() if t.id == process.pid), 0.0)
    return loop, total.user + total.system - loop


async def _compare_pair(args: argparse.Namespace, result: Compared, pair: int, *, warmup: int, measured: int) -> None:
    """One pair of fresh services: `warmup` rounds, then `measured` rounds recorded in `result`."""
    seed = {"PYTHONHASHSEED": str(pair)}  # the same for both: one source of process-to-process spread less
    with (
        tempfile.TemporaryDirectory() as on_dir,
        tempfile.TemporaryDirectory() as off_dir,
        running_service(Path(on_dir), **_settings(args, purge=True), **seed) as on,
        running_service(Path(off_dir), **_settings(args, purge=False), **seed) as off,
    ):
        services = {True: on, False: off}
        processes = {purge: _pin(service) for purge, service in services.items()}
        for service in services.values():
            _freeze(service, True)
        try:
            for round_ in range(warmup + measured):
                for purge in (True, False) if (round_ + pair) % 2 == 0 else (False, True):
                    service = services[purge]
                    _freeze(service, False)
                    window = Window()
                    cpu_before = _cpu(processes[purge])
                    started = time.monotonic()
                    await _calls(service.port, started + args.window, args, window)
                    rate = window.calls / (time.monotonic() - started)
                    _freeze(service, True)
                    loop, other = (
                        (after - before) / max(window.calls, 1) * 1e6
                        for after, before in zip(_cpu(processes[purge]), cpu_before, strict=True)
                    )
                    counted = round_ >= warmup
                    if counted:
                        (result.on if purge else result.off).append(rate)
                        (result.cpu_on if purge else result.cpu_off).append((loop, other))
                    result.errors += window.errors
                    print(
                        f"pair {pair + 1} round {round_ + 1:2d}{'' if counted else ' (warm-up)'}  "
                        f"purge {'on ' if purge else 'off'}  {rate:6.0f} calls/s"
                        f"  CPU per call: loop {loop:4.0f} us, other threads {other:4.0f} us",
                        flush=True,
                    )
        finally:
            for service in services.values():
                _freeze(service, False)


async def compare(args: argparse.Namespace) -> int:
    """Purge on and off, interleaved: two services, one loaded while the other is frozen.

    Back-to-back runs drift with the machine by ±10%, more than the effect measured, and two
    processes of the same code differ by as much again (memory layout). So: `--pairs` fresh
    pairs of services, one purging and one not, with the same hash seed; in each, the clients
    load one service for `--window` seconds while the other is frozen (SIGSTOP), swapping the
    order every round (and every pair starts the other way round): first for `--warmup` rounds
    that are not counted (the purging one reaches its retention), then for `--rounds` /
    `--pairs` rounds that are. A frozen
    service does no work at all, so every delete (the backlog that expired while it was frozen
    too) is paid inside its own windows.
    """
    result = Compared(args.store, args.window, args.rounds, args.pairs)
    for pair in range(args.pairs):
        measured = args.rounds // args.pairs + (pair < args.rounds % args.pairs)
        await _compare_pair(args, result, pair, warmup=args.warmup, measured=measured)
    pairs = result.ratios
    print(
        f"store {args.store}, {args.rounds} rounds of {args.window:.0f} s each way in {args.pairs} pairs of "
        f"processes, {args.sessions} sessions"
    )
    print(f"calls/s with purge / without: {result.ratio:.3f} over all windows")
    print(f"  per round: median {statistics.median(pairs):.3f}, range {min(pairs):.3f}-{max(pairs):.3f}")
    for name, cpu in (("on", result.cpu_on), ("off", result.cpu_off)):
        loop, other = (statistics.median(part) for part in zip(*cpu, strict=True))
        print(f"  CPU per call, purge {name:3s}: loop {loop:.0f} us, other threads {other:.0f} us (medians)")
    if args.out:
        await anyio.Path(args.out).write_text(json.dumps(asdict(result), indent=1))
    return 1 if result.errors else 0


def plot(paths: list[str], to: str, markdown: str | None) -> None:
    """One row of charts per metric, one line per run; with `markdown`, the figures as a section of that report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded: list[dict[str, Any]] = [json.loads(Path(path).read_text()) for path in paths]
    runs = [run for run in loaded if "samples" in run]
    compared = [Compared(**run) for run in loaded if "samples" not in run]
    metrics = [
        ("calls_per_s", "tool calls/s"),
        ("file_mb", "store size (MB)"),
        ("events", "stored events"),
        ("rss_mb", "RSS (MB)"),
    ]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2))
    for axis, (metric, label) in zip(axes, metrics, strict=True):
        for run in runs:
            name = f"{run['store']}{'' if run['purge'] else ', no purge'}"
            axis.plot([s["t"] / 60 for s in run["samples"]], [s[metric] for s in run["samples"]], label=name)
        axis.set_title(label, fontsize=10)
        axis.set_xlabel("minutes")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(to, dpi=110)
    print(f"wrote {to}")
    if markdown is not None:
        report = Path(markdown)
        image = os.path.relpath(to, report.parent)
        section = soak_section(runs, compared, image)
        report.write_text(with_section(report.read_text() if report.exists() else "", section))
        print(f"wrote its section into {markdown}")


def _cpu_cell(cpu: list[tuple[float, float]]) -> str:
    if not cpu:
        return "not measured"
    loop, other = (statistics.median(part) for part in zip(*cpu, strict=True))
    return f"{loop:.0f} us, {other:.0f} us"


def _sessions_cell(run: dict[str, Any]) -> str:
    """How many clients, and how long each kept a session (runs from before these were recorded: 10, 30 s)."""
    life = run.get("session_seconds", 30.0)
    return f"{run.get('sessions', 10)}, {'whole run' if life is None else f'new every {life:g} s'}"


def _retention_cell(run: dict[str, Any]) -> str:
    if not run["purge"]:
        return "everything kept"
    settings = run["settings"]
    cell = f"jobs {settings['SERVICE_JOB_RETENTION']} s, ended sessions {settings['SERVICE_EVENT_RETENTION']} s"
    if "session_seconds" not in run:  # a run from before finished streams expired
        return cell
    stream = settings.get("SERVICE_STREAM_RETENTION")
    return cell + (f", finished streams {stream} s" if stream else ", finished streams: the service's default")


def soak_section(runs: list[dict[str, Any]], compared: list[Compared], image: str) -> str:
    lines = [
        "## Retention under sustained load",
        "",
        "Generated by `uv run python -m bench.soak --sustained` (then `--plot ... --markdown`): tool calls back to "
        "back (count=1, interval=0) from several clients, server on core 0 and clients on core 1. Each run's "
        "clients either take a new session every so often, or keep one session each for the whole run "
        "(`--long-lived`, as desktop clients do: nothing is freed by a session ending). No cap on the jobs kept. "
        "Slopes are least-squares fits over the last half of the run: a plateau has a slope near 0.",
        "",
        "| store | clients, sessions | retention | s | calls/s | store MB (end) | jobs (end) | events (end) "
        "| RSS MB (end) | store MB/min | events/min | RSS MB/min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        samples = [Sample(**sample) for sample in run["samples"]]
        last = samples[-1]
        lines.append(
            f"| {run['store']} | {_sessions_cell(run)} | {_retention_cell(run)} | {run['seconds']:.0f} "
            f"| {run['calls'] / run['seconds']:.0f} "
            f"| {last.file_mb:.1f} | {last.jobs:,} | {last.events:,} | {last.rss_mb:.1f} "
            f"| {_slope_per_min(samples, 'file_mb'):+.2f} | {_slope_per_min(samples, 'events'):+,.0f} "
            f"| {_slope_per_min(samples, 'rss_mb'):+.2f} |"
        )
    intervals = sorted({float(run.get("sample", 30.0)) for run in runs})
    spread = [sample["calls_per_s"] for run in runs for sample in run["samples"][len(run["samples"]) // 2 :]]
    lines += [
        "",
        f"Calls/s of single samples (every {' or '.join(f'{v:g}' for v in intervals)} s) in the last halves ranged "
        f"{min(spread):.0f}-{max(spread):.0f}: these runs "
        "are one after the other, so a ratio of two of them is only good to about ±10%. The cost of purging is "
        "measured apart, interleaved (`--compare`): pairs of fresh services, one with purge and one without, "
        "loaded in turn while the other is frozen (SIGSTOP), the order swapped every round, so that the machine's "
        "drift falls on both alike, and several pairs, because two processes of the same code differ by up to 10% "
        "(the first rounds of each pair, before anything expires, are not counted). A frozen service does no "
        "work, so every delete is paid in its own windows.",
        "",
        "| store | rounds | calls/s with purge / without | per round: median (range) "
        "| CPU per call with purge: loop, other threads | without |",
        "|---|---|---|---|---|---|",
    ]
    for comparison in compared:
        pairs = comparison.ratios
        on, off = (_cpu_cell(cpu) for cpu in (comparison.cpu_on, comparison.cpu_off))
        lines.append(
            f"| {comparison.store} | {comparison.rounds} x {comparison.window:.0f} s each way, "
            f"{comparison.pairs} pairs of processes "
            f"| **{comparison.ratio:.3f}** | {statistics.median(pairs):.3f} ({min(pairs):.3f}-{max(pairs):.3f}) "
            f"| {on} | {off} |"
        )
    for comparison in compared:
        if comparison.cpu_on and comparison.cpu_off:
            extra = statistics.median(other for _, other in comparison.cpu_on) - statistics.median(
                other for _, other in comparison.cpu_off
            )
            lines.append(
                f"\n{comparison.store}: purging costs the store's threads {extra:+.0f} us of CPU per call "
                "(the medians above, with purge minus without): what the deletes take, measured without the "
                "noise of calls/s, whose windows spread over the range shown."
            )
    lines += ["", f"![retention under load]({image})"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=None, help="50, or 10 with --sustained")
    parser.add_argument("--seconds", type=float, default=None, help="120, or 600 with --sustained")
    parser.add_argument("--minutes", type=float, default=None, help="the same as --seconds, in minutes")
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--sustained", action="store_true", help="retention under full-speed tool calls")
    parser.add_argument("--retention", type=float, default=60, help="--sustained: job and event retention (s)")
    parser.add_argument(
        "--stream-retention",
        type=float,
        default=None,
        help="--sustained: SERVICE_STREAM_RETENTION, seconds a live session's finished streams stay resumable "
        "(default: the service's)",
    )
    parser.add_argument("--no-purge", action="store_true", help="--sustained: keep everything")
    parser.add_argument("--session-seconds", type=float, default=30, help="--sustained: a session's life")
    parser.add_argument(
        "--long-lived", action="store_true", help="--sustained: each client keeps one session for the whole run"
    )
    parser.add_argument(
        "--sample", type=float, default=None, help="--sustained: seconds between samples (30; 1/20 of a shorter run)"
    )
    parser.add_argument("--compare", action="store_true", help="--sustained: purge on and off, interleaved")
    parser.add_argument("--rounds", type=int, default=12, help="--compare: measured windows each way, in all")
    parser.add_argument("--pairs", type=int, default=4, help="--compare: fresh pairs of services they are spread over")
    parser.add_argument("--warmup", type=int, default=2, help="--compare: rounds not counted at the start of a pair")
    parser.add_argument("--window", type=float, default=20, help="--compare: seconds of load per window")
    parser.add_argument("--out", help="--sustained: write the samples (or --compare's windows) here as JSON")
    parser.add_argument("--plot", nargs="+", metavar="JSON", help="chart runs written with --out")
    parser.add_argument("--to", default="retention.png", help="--plot: the PNG to write")
    parser.add_argument("--markdown", help="--plot: write the figures as a section of this report (docs/benchmarks.md)")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot, args.to, args.markdown)
        return
    if args.minutes is not None:
        if args.seconds is not None:
            parser.error("--seconds or --minutes, not both")
        args.seconds = args.minutes * 60
    if args.sustained:
        args.sessions, args.seconds = args.sessions or 10, args.seconds or 600
        args.sample = args.sample or min(30.0, max(1.0, args.seconds / 20))
        raise SystemExit(anyio.run(compare if args.compare else sustained, args))
    args.sessions, args.seconds = args.sessions or 50, args.seconds or 120
    raise SystemExit(anyio.run(soak, args))


if __name__ == "__main__":
    main()
