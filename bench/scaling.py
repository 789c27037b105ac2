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
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.servers import EXAMPLE, LOADGEN_CORE, ROOT, SERVER_CORE, SERVICE_SQLITE, Server, loadgen, log, running
from harness.cluster import free_port_run
from harness.service import free_port
from service.cluster.balancer import Replica, caddy_config, start_balancer
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
    port: int | None = None,
    watched: Sequence[int] = (),
    redis: RedisServer | None = None,
) -> dict[str, Any] | None:
    """One closed-loop tool-call run, with the watched processes' CPU and Redis's counters around it."""
    before = redis_stats(redis) if redis is not None else None
    args = ["--sessions", str(sessions), "--duration", str(duration), "--warmup", "0"]
    args += [item for pid in watched for item in ("--watch-pid", str(pid))]
    result = loadgen(server, "tools", *args, timeout=duration + 120, port=port)
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
            notify = loadgen(server, "notify", "--count", str(plan.notify), "--reps", "2", timeout=600)
            if notify is not None:
                out.setdefault(name, {}).setdefault("notify", []).append(notify)
                log(f"  {name:15} notifications: {notify['notifications_per_s']:8.0f}/s")


@dataclass
class Cluster:
    balancer_port: int
    replica_pids: list[int]
    balancer_pid: int
    redis: RedisServer


@contextmanager
def cluster_on_core(replicas: int, workdir: Path) -> Iterator[Cluster]:
    """Redis, `replicas` replicas and Caddy, all pinned to the server's core."""
    base = free_port_run(replicas + 1)
    parts = [Replica(f"r{index}", base + index) for index in range(1, replicas + 1)]
    with ExitStack() as stack:
        redis = stack.enter_context(redis_on_core(workdir))
        procs = []
        for replica in parts:
            env = {
                **{key: value for key, value in os.environ.items() if not key.startswith("SERVICE_")},
                "PYTHONPATH": str(ROOT),
                "SERVICE_STORE": "redis",
                "SERVICE_REDIS_URL": redis.url,
                "SERVICE_PORT": str(replica.port),
                "SERVICE_REPLICA_ID": replica.id,
                "SERVICE_LOG_LEVEL": "WARNING",
                "SERVICE_ALLOWED_HOSTS": json.dumps([f"127.0.0.1:{base}"]),
            }
            proc = subprocess.Popen(
                [sys.executable, "-m", "service"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            stack.callback(_stop, proc)
            pin(proc.pid)
            procs.append(proc)
        for replica in parts:
            _wait(f"http://{replica.address}/healthz")
        balancer = start_balancer("caddy", caddy_config(base, parts), workdir / "caddy", workdir / "caddy.log")
        stack.callback(_stop, balancer)
        pin(balancer.pid)
        _wait(f"http://127.0.0.1:{base}/healthz")
        yield Cluster(base, [proc.pid for proc in procs], balancer.pid, redis)


def _wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def cluster_round(plan: Plan, out: dict[str, Any]) -> None:
    for replicas in plan.replicas:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp, cluster_on_core(replicas, Path(tmp)) as c:
            first = Server(f"cluster-{replicas}", c.balancer_port, psutil_popen(c.replica_pids[0]), Path(tmp))
            others = [*c.replica_pids[1:], c.balancer_pid, *([c.redis.proc.pid] if c.redis.proc else [])]
            result = tools(first, CLUSTER_SESSIONS, plan.duration * 2, watched=others, redis=c.redis)
            if result is not None:
                cpu = {str(c.replica_pids[0]): result["server_cpu"], **result["watched_cpu"]}
                replicas_cpu = sum(cpu[str(pid)] for pid in c.replica_pids)
                result["replicas_us_per_call"] = per_call_us(result, replicas_cpu)
                result["balancer_us_per_call"] = per_call_us(result, cpu[str(c.balancer_pid)])
                if c.redis.proc is not None:
                    result["redis_us_per_call"] = per_call_us(result, cpu[str(c.redis.proc.pid)])
                out.setdefault(f"balanced-{replicas}", []).append(result)
                log(
                    f"  {replicas} replica(s) behind Caddy: {result['calls_per_s']:8.1f} calls/s  "
                    f"replicas {result['replicas_us_per_call']:5.0f} us/call  "
                    f"caddy {result['balancer_us_per_call']:5.0f} us/call  "
                    f"redis {result.get('redis_us_per_call', 0):5.0f} us/call"
                )
            if replicas == 1:  # the same replica, addressed directly: what the balancer adds
                direct = Server("direct", c.balancer_port + 1, psutil_popen(c.replica_pids[0]), Path(tmp))
                result = tools(direct, CLUSTER_SESSIONS, plan.duration * 2, redis=c.redis)
                if result is not None:
                    result["replicas_us_per_call"] = per_call_us(result, result["server_cpu"])
                    out.setdefault("direct-1", []).append(result)
                    log(f"  1 replica, no balancer:    {result['calls_per_s']:8.1f} calls/s")


def psutil_popen(pid: int) -> Any:
    """A stand-in for `Server.proc` (only `.pid` and `.poll()` are used) for a process started elsewhere."""
    process = psutil.Process(pid)

    class Proc:
        def __init__(self) -> None:
            self.pid = pid
            self.returncode = None

        def poll(self) -> int | None:
            return None if process.is_running() else 0

    return Proc()


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
