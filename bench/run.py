"""Benchmark: this service (SQLite and memory stores) against the SDK's simple streamable HTTP example.

    uv run python -m bench.run            # the full run (about 25 minutes), writes docs/benchmarks.{md,png,json}
    uv run python -m bench.run --quick    # a smoke run (under 2 minutes) to bench/results/; exits 1 on errors
    uv run python -m bench.run --render docs/benchmarks.json   # the report again, from a run's stored figures
    uv run python -m bench.run --remeasure-notify docs/benchmarks.json   # its notification rows again (~5 min)
    uv run python -m bench.run --tools-only --servers service-sqlite --code /tmp/old   # another checkout's calls

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
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.measure import FULL, QUICK, Plan, remeasure_notify, run
from bench.report import code_version, load, machine_info, report
from bench.servers import LOADGEN_CORE, ROOT, log
from bench.summary import smoke_problems, tool_lines


def freeze_code(into: Path, source: Path = ROOT) -> str:
    """Copy `source`'s service/ to `into` for the servers to import (edits made while a run goes on
    change nothing it measures), and describe what was copied."""
    shutil.copytree(source / "service", into / "service", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted((into / "service").rglob("*.py")):
        digest.update(path.relative_to(into).as_posix().encode() + b"\0" + path.read_bytes())
    where = code_version() if source == ROOT else f"the checkout at {source}"
    return f"{where}; snapshot sha256 {digest.hexdigest()[:12]}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one short round, small sizes")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--out", type=Path, help="where to write benchmarks.{md,png,json}")
    parser.add_argument("--render", type=Path, help="measure nothing: write the report again from a benchmarks.json")
    parser.add_argument(
        "--remeasure-notify",
        type=Path,
        help="measure the notification rows of this benchmarks.json again (its other rows kept), and report",
    )
    parser.add_argument(
        "--tools-only",
        action="store_true",
        help="the tool-call runs alone, printed, no report (a change's before/after)",
    )
    parser.add_argument("--servers", help="only these servers, comma-separated (service-sqlite,service-memory)")
    parser.add_argument("--code", type=Path, default=ROOT, help="measure the service/ of this checkout (a worktree)")
    args = parser.parse_args(argv)
    if args.render:
        results = load(args.render)
        report(results, args.out or args.render.parent)
        return
    if args.remeasure_notify:
        results = load(args.remeasure_notify)
        with tempfile.TemporaryDirectory(prefix="bench-code-") as snapshot:
            code = freeze_code(Path(snapshot))
            log(f"measuring the notification rows again, {code}")
            remeasure_notify(results, code=Path(snapshot))
        when = time.strftime("%Y-%m-%d %H:%M %Z")
        results.amended.append(
            f"the notification rows were measured again on {when}, at {code}, in {results.plan.rounds} rounds "
            "of their own (`bench.run --remeasure-notify`): their ratios pair those rounds"
        )
        report(results, args.out or args.remeasure_notify.parent)
        return
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = Plan(**{**vars(plan), "rounds": args.rounds})
    if args.out:
        plan = Plan(**{**vars(plan), "out_dir": args.out})
    if args.tools_only:
        plan = Plan(**{**vars(plan), "tools_only": True})
    if args.servers:
        plan = Plan(**{**vars(plan), "servers": tuple(args.servers.split(","))})
    if len(os.sched_getaffinity(0)) < 2 or (os.cpu_count() or 1) < 2:
        raise SystemExit("bench.run needs two cores (server on core 0, load generator on core 1)")
    os.sched_setaffinity(0, {LOADGEN_CORE})  # keep this orchestrator off the server's core
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-code-") as snapshot:
        code = freeze_code(Path(snapshot), args.code)
        log(f"measuring {code}")
        results = run(plan, code=Path(snapshot))
        results.code = code
    if plan.tools_only:
        print("\n".join(tool_lines(results)))
        return
    results.machine = machine_info()
    results.generated = time.strftime("%Y-%m-%d %H:%M %Z")
    report(results, plan.out_dir)
    print(f"\nwrote {plan.out_dir / 'benchmarks.md'} in {time.monotonic() - started:.0f} s")
    if args.quick and (problems := smoke_problems(results)):
        raise SystemExit("smoke run failed: " + "; ".join(problems))


if __name__ == "__main__":
    main()
