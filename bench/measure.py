"""What a benchmark run measures, and the plan of rounds it follows (`FULL`, `QUICK`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import (
    BARE,
    EVERY_SERVER,
    MCP_SERVERS,
    REPLAY_MAX_STORED,
    REPLAY_SERVERS,
    ROOT,
    SDK_LIMIT_SERVERS,
    Server,
    loadgen,
    log,
    running,
    wait_quiet,
)

SESSIONS = (1, 10, 100)


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
    tools_only: bool = False
    """Measure the tool calls and nothing else (a before-and-after of a change: `--tools-only`)."""
    servers: tuple[str, ...] = ()
    """Only these servers (`--servers`); every one when empty."""


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
    amended: list[str] = field(default_factory=list)
    """Rows measured again after the run, and how (`remeasure_notify`): the report says so beside them."""


def measure_tools(
    results: Results, server: Server, session_counts: Sequence[int] = SESSIONS, *, round_no: int = 1
) -> None:
    """`round_no` (from 1) is recorded in each result: the report pairs the servers' figures by round."""
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
        result["round"] = round_no
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


def measure_notify(results: Results, server: Server, *, round_no: int = 1) -> None:
    plan = results.plan
    args = ["--count", str(plan.notify_count), "--reps", str(plan.notify_reps)]
    if (result := _measure_once(results, server, "notify", *args, timeout=600)) is None:
        return
    result["round"] = round_no
    results.notify.setdefault(server.name, []).append(result)
    log(
        f"  {server.name:15} notifications: {result['notifications_per_s']:8.0f}/s  "
        f"cpu server {result.get('server_cpu', 0):.2f} loadgen {result['loadgen_cpu']:.2f}  errors {result['errors']}"
    )


def measure_rss(results: Results, server: Server, *, round_no: int = 1) -> None:
    args = ["--sessions", str(results.plan.rss_sessions)]
    if (result := _measure_once(results, server, "rss", *args, timeout=600)) is None:
        return
    result["round"] = round_no
    results.rss.setdefault(server.name, []).append(result)
    log(
        f"  {server.name:15} RSS: {result['rss_before_mb']:.1f} -> {result['rss_after_mb']:.1f} MB, "
        f"{result['rss_per_session_kb']:.1f} KB/session ({result['alive']} alive)"
    )


def stored_after(stages: Sequence[int]) -> list[int]:
    """The events in the replay session's history after each stage's fill (notifications, priming event, result)."""
    total, out = 0, []
    for count in stages:
        total += count + 2
        out.append(total)
    return out


def measure_replay(results: Results, server: Server) -> None:
    plan = results.plan
    limit = REPLAY_MAX_STORED.get(server.name)
    totals = zip(plan.replay_stages, stored_after(plan.replay_stages), strict=True)
    stages = [str(count) for count, stored in totals if not limit or stored <= limit]
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


def run(plan: Plan, *, code: Path | None = None) -> Results:
    results = Results(plan)
    for round_no in range(plan.rounds):
        order = rotated([name for name in EVERY_SERVER if not plan.servers or name in plan.servers], round_no)
        log(f"round {round_no + 1}/{plan.rounds}: {', '.join(order)}")
        for name in order:
            try:
                with running(name, code=code) as server:
                    results.native[name] = server.native_modules()
                    if name in SDK_LIMIT_SERVERS:
                        measure_tools(results, server, (1,), round_no=round_no + 1)
                        continue
                    measure_tools(results, server, round_no=round_no + 1)
                    if name != BARE and not plan.tools_only:
                        measure_notify(results, server, round_no=round_no + 1)
                if name != BARE and not plan.tools_only:
                    with running(name, code=code) as server:
                        measure_rss(results, server, round_no=round_no + 1)
            except RuntimeError as exc:
                log(f"  ! {name}: {exc}")
                results.failures.append(f"{name} round {round_no + 1}: {exc}")
    log("replay")
    for name in [] if plan.tools_only else rotated(REPLAY_SERVERS, plan.rounds):
        try:
            with running(name, code=code, replay=True) as server:
                measure_replay(results, server)
        except RuntimeError as exc:
            log(f"  ! {name}: {exc}")
            results.failures.append(f"{name} replay: {exc}")
    return results


def remeasure_notify(results: Results, *, code: Path | None = None) -> None:
    """Measure the notification rows of a run again, in rounds of their own, the servers rotated as `run` does."""
    results.notify = {}
    for round_no in range(results.plan.rounds):
        for name in rotated(MCP_SERVERS, round_no):
            try:
                with running(name, code=code) as server:
                    measure_notify(results, server, round_no=round_no + 1)
            except RuntimeError as exc:
                log(f"  ! {name}: {exc}")
                results.failures.append(f"{name} notify round {round_no + 1}: {exc}")
