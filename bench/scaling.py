"""Scale-out figures: the service on Redis against SQLite and the SDK's example, then replicas behind Caddy.

    uv run python -m bench.scaling              # about 12 minutes: docs/scaling.json, and the tables printed
    uv run python -m bench.scaling --quick      # a smoke run (about a minute)

Part 1, one process: `service-sqlite`, `service-redis` (SERVICE_STORE=redis) and the SDK's
`example`, in rotated order each round, tool calls at 1, 10 and 100 sessions and one
call of `--notify` notifications. The server and its redis-server share core 0 (a store's
work is the service's cost, wherever it runs); the load generator has core 1. Besides
calls/s: the server's and Redis's CPU per call, and Redis commands and network reads
(`INFO stats`: `total_commands_processed`, `total_reads_processed`) per call. A read is one
batch of commands received, the server's view of a round trip.

Part 2, the cluster: 1, 2 and 3 replicas on one Redis behind Caddy (`service.cluster`), all of
them on core 0 with Redis and Caddy, the load generator on core 1, 100 sessions through the
balancer; and the same single replica without the balancer. On two cores this measures
what each part costs per call (replicas, Redis, Caddy), not how far more cores carry it:
docs/scaling.md works that out from these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.servers import EXAMPLE, LOADGEN_CORE, ROOT, SERVER_CORE, SERVICE_SQLITE, Server, loadgen, log, running
from harness.cluster import ClusterProcess
from harness.service import free_port
from service.cluster.redis_server import RedisServer

SERVICE_REDIS = "service-redis"
ONE_PROCESS = (SERVICE_SQLITE, SERVICE_REDIS, EXAMPLE)
SESSIONS = (1, 10, 100)
CLUSTER_SESSIONS = 100


@dataclass(frozen=True)
class Plan:
    rounds: int
    duration: float
    notify: int
    replicas: tuple[int, ...]


FULL = Plan(rounds=3, duration=5.0, notify=10_000, replicas=(1, 2, 3))
QUICK = Plan(rounds=1, duration=1.0, notify=2000, replicas=(1, 2))


def pin(pid: int, core: int = SERVER_CORE) -> None:
    os.sched_setaffinity(pid, {core})


@contextmanager
def redis_on_core(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "redis", free_port()).start()
    assert server.proc is not None
    pin(server.proc.pid)
    try:
        yield server
    finally:
        server.stop()


def redis_stats(server: RedisServer) -> tuple[int, int]:
    """Commands processed and network reads so far."""
    stats = dict(line.split(":", 1) for line in server.command("INFO", "stats").splitlines() if ":" in line)
    return int(stats["total_commands_processed"]), int(stats["total_reads_processed"])


def tools(
    server: Server,
    sessions: int,
    duration: float,
    *,
    watched: Sequence[int] = (),
    redis: RedisServer | None = None,
    pid: int | None = None,
) -> dict[str, Any] | None:
    """One closed-loop tool-call run, with the watched processes' CPU and Redis's counters around it."""
    before = redis_stats(redis) if redis is not None else None
    args = ["--sessions", str(sessions), "--duration", str(duration), "--warmup", "0"]
    args += [item for watched_pid in watched for item in ("--watch-pid", str(watched_pid))]
    result = loadgen(server, "tools", *args, timeout=duration + 120, server_pid=pid)
    if result is not None and redis is not None and before is not None and result["calls"]:
        commands, reads = redis_stats(redis)
        # warmup 0: the window covers the calls; sessions' set-up and teardown add a little.
        result["redis_commands_per_call"] = (commands - before[0]) / result["calls"]
        result["redis_reads_per_call"] = (reads - before[1]) / result["calls"]
    return result


def per_call_us(result: dict[str, Any], cores: float) -> float:
    return cores / result["calls_per_s"] * 1e6 if result["calls_per_s"] else float("nan")


def one_process_round(plan: Plan, order: Sequence[str], out: dict[str, Any]) -> None:
    for name in order:
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scaling-")))
            redis = stack.enter_context(redis_on_core(tmp)) if name == SERVICE_REDIS else None
            settings = {"SERVICE_STORE": "redis", "SERVICE_REDIS_URL": redis.url} if redis is not None else None
            server = stack.enter_context(running(SERVICE_SQLITE if redis else name, settings=settings))
            watched = [redis.proc.pid] if redis is not None and redis.proc is not None else []
            for sessions in SESSIONS:
                result = tools(
                    server, sessions, plan.duration * (2 if sessions >= 100 else 1), watched=watched, redis=redis
                )
                if result is None:
                    continue
                result["server_us_per_call"] = per_call_us(result, result["server_cpu"])
                if watched:
                    result["redis_us_per_call"] = per_call_us(result, result["watched_cpu"][str(watched[0])])
                out.setdefault(name, {}).setdefault(str(sessions), []).append(result)
                log(
                    f"  {name:15} {sessions:>3} sessions: {result['calls_per_s']:8.1f} calls/s  "
                    f"server {result['server_us_per_call']:6.0f} us/call"
                    + (
                        f"  redis {result['redis_us_per_call']:5.0f} us/call, "
                        f"{result['redis_commands_per_call']:.1f} commands, {result['redis_reads_per_call']:.2f} reads"
                        if redis is not None
                        else ""
                    )
                )
            store = [item for watched_pid in watched for item in ("--watch-pid", str(watched_pid))]
            notify = loadgen(server, "notify", "--count", str(plan.notify), "--reps", "2", *store, timeout=600)
            if notify is not None:
                out.setdefault(name, {}).setdefault("notify", []).append(notify)
                log(f"  {name:15} notifications: {notify['notifications_per_s']:8.0f}/s")


def cluster_round(plan: Plan, out: dict[str, Any]) -> None:
    for replicas in plan.replicas:
        with ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cluster-")))
            redis = stack.enter_context(redis_on_core(workdir))
            cluster = ClusterProcess(workdir, replicas, env={"SERVICE_REDIS_URL": redis.url}, core=SERVER_CORE).start()
            stack.callback(cluster.stop)
            assert cluster.proc is not None
            assert redis.proc is not None
            replica_pids = [cluster.pids[f"r{index}"] for index in range(1, replicas + 1)]
            balancer_pid = cluster.pids["balancer"]
            others = [*replica_pids[1:], balancer_pid, redis.proc.pid]
            balanced = Server(f"cluster-{replicas}", cluster.port, cluster.proc, workdir)
            duration = plan.duration * 2
            result = tools(balanced, CLUSTER_SESSIONS, duration, watched=others, redis=redis, pid=replica_pids[0])
            if result is not None:
                cpu = {str(replica_pids[0]): result["server_cpu"], **result["watched_cpu"]}
                result["replicas_us_per_call"] = per_call_us(result, sum(cpu[str(pid)] for pid in replica_pids))
                result["balancer_us_per_call"] = per_call_us(result, cpu[str(balancer_pid)])
                result["redis_us_per_call"] = per_call_us(result, cpu[str(redis.proc.pid)])
                out.setdefault(f"balanced-{replicas}", []).append(result)
                log(
                    f"  {replicas} replica(s) behind Caddy: {result['calls_per_s']:8.1f} calls/s  "
                    f"replicas {result['replicas_us_per_call']:5.0f} us/call  "
                    f"caddy {result['balancer_us_per_call']:5.0f} us/call  "
                    f"redis {result['redis_us_per_call']:5.0f} us/call"
                )
            if replicas == 1:  # the same replica, addressed directly: what the balancer adds
                direct = Server("direct", cluster.port + 1, cluster.proc, workdir)
                result = tools(direct, CLUSTER_SESSIONS, plan.duration * 2, redis=redis, pid=replica_pids[0])
                if result is not None:
                    result["replicas_us_per_call"] = per_call_us(result, result["server_cpu"])
                    out.setdefault("direct-1", []).append(result)
                    log(f"  1 replica, no balancer:    {result['calls_per_s']:8.1f} calls/s")


def medians(out: dict[str, Any]) -> list[str]:
    lines = ["", "one process (medians over rounds):"]
    for name in ONE_PROCESS:
        for sessions in SESSIONS:
            runs = out.get(name, {}).get(str(sessions), [])
            if not runs:
                continue
            line = (
                f"  {name:15} {sessions:>3} sessions: {statistics.median(r['calls_per_s'] for r in runs):8.1f} calls/s"
            )
            line += f"  server {statistics.median(r['server_us_per_call'] for r in runs):5.0f} us/call"
            if name == SERVICE_REDIS:
                line += f"  redis {statistics.median(r['redis_us_per_call'] for r in runs):4.0f} us/call"
                line += f"  {statistics.median(r['redis_commands_per_call'] for r in runs):.1f} commands"
                line += f"  {statistics.median(r['redis_reads_per_call'] for r in runs):.2f} reads per call"
            lines.append(line)
        notify = out.get(name, {}).get("notify", [])
        if notify:
            lines.append(
                f"  {name:15} notifications: {statistics.median(r['notifications_per_s'] for r in notify):8.0f}/s"
            )
    lines.append("cluster, 100 sessions:")
    for key in sorted(k for k in out if k.startswith(("balanced-", "direct-"))):
        runs = out[key]
        line = f"  {key:12} {statistics.median(r['calls_per_s'] for r in runs):8.1f} calls/s"
        line += f"  replicas {statistics.median(r['replicas_us_per_call'] for r in runs):5.0f} us/call"
        if key.startswith("balanced"):
            line += f"  caddy {statistics.median(r['balancer_us_per_call'] for r in runs):5.0f} us/call"
            line += f"  redis {statistics.median(r['redis_us_per_call'] for r in runs):5.0f} us/call"
        lines.append(line)
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "scaling.json")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    os.sched_setaffinity(0, {LOADGEN_CORE})
    out: dict[str, Any] = {"plan": vars(plan), "generated": time.strftime("%Y-%m-%d %H:%M %Z")}
    for round_no in range(plan.rounds):
        order = [*ONE_PROCESS[round_no % 3 :], *ONE_PROCESS[: round_no % 3]]
        log(f"round {round_no + 1}/{plan.rounds}: {', '.join(order)}, then the cluster")
        one_process_round(plan, order, out)
        cluster_round(plan, out)
    print("\n".join(medians(out)))
    if not args.quick:
        args.out.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
