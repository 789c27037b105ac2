"""Failover bench: a replica dies (kill -9) or drains (SIGTERM) under a REST follower or an MCP call.

A cluster of three replicas on one Redis behind Caddy (`service.cluster`). Each run, for each
`--clients` kind, strikes a replica at a random notification of a `--count`-notification job
(`--interval` apart) with the fault (kill -9, or SIGTERM: a rolling restart's step):

- `rest`: a job started on r2 and followed from r1 over `/jobs/{id}/events`; r2 is struck.
- `raw`: a 2025-11-25 session opened by hand through the balancer calls the tool; the replica
  that holds the session (its id's prefix) is struck. The client resumes the call's stream with
  `GET` and `Last-Event-ID` through the balancer, 0.5 s apart, until the call's response.
- `sdk`: the Python SDK's client calls the tool; the replica that runs the call (its job's
  record says) is struck. The client resumes by itself (twice at most).

Prints, per fault and kind, over the runs: notifications lost, duplicated and out of order (all
must be 0), the MCP calls that failed (no `completed` result, or the session's next call failing:
all must be 0), how long the client waited from the fault to its next notification (`resumed`:
the survivor's first one, unless the struck replica had sent the next one already), and the
longest gap between two notifications it saw (`stall`), as median, p99 and max.

`--rolling`: a rolling restart under load instead. `--clients-count` SDK clients call the tool
in a loop (20 notifications, 20 ms apart) for 5 s, while r1, r2 and r3 are SIGTERMed in turn
(each once the supervisor has restarted the one before), then for 5 s more. Prints calls/s and
failed calls in each phase; a call belongs to the phase in which it ended.

    uv run python -m bench.failover                          # 20 runs of each fault and client (about 15 minutes)
    uv run python -m bench.failover --runs 3 --faults kill --clients rest   # a smoke run
    uv run python -m bench.failover --rolling                # a rolling restart under six clients
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp_types import CallToolResult

from harness.clients import Received, mcp_client
from harness.cluster import ClusterProcess, running_cluster
from harness.raw_session import RESUME_EVERY, RawSession
from harness.sse import parse_sse
from service.tools.notification_stream import TOOL_NAME

FAULTS = {"kill": signal.SIGKILL, "sigterm": signal.SIGTERM}
CLIENTS = ("rest", "raw", "sdk")
"""A raw client's resumptions of one call: 20 s of them, well over the few leases a takeover takes."""
AGAIN = 3
"""The notifications of the session's next call, made after the fault."""
SLACK = 60.0
"""How much longer than its notifications take an MCP run may last before it counts as failed."""
ROLLING_COUNT = 20
ROLLING_INTERVAL = 0.02
PHASE = 5.0
"""How long the rolling bench loads the cluster before the first SIGTERM and after the last restart."""
CALL_TIMEOUT = 30.0


@dataclass
class Run:
    lost: int
    duplicated: int
    out_of_order: int
    resumed: float
    stall: float
    failed: int = 0
    """The MCP calls of the run (the struck one, the session's next) that did not end well."""
    refused: int = 0
    """A raw client's resumptions that the balancer or a replica refused."""
    errors: list[str] = field(default_factory=list)


Arrivals = list[tuple[float, int]]
"""When each notification arrived, and its number."""


def tally(arrivals: Arrivals, count: int, struck: float | None) -> Run:
    """What the client saw of the struck call's notifications."""
    indexes = [index for _, index in arrivals]
    after = [at for at, _ in arrivals if struck is not None and at > struck]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(arrivals)]
    return Run(
        lost=len(set(range(1, count + 1)) - set(indexes)),
        duplicated=len(indexes) - len(set(indexes)),
        out_of_order=sum(1 for a, b in itertools.pairwise(indexes) if b <= a),
        resumed=(after[0] - struck) if after and struck is not None else float("inf"),
        stall=max(gaps, default=0.0),
    )


def index_of(data: Any, count: int, caller: str) -> int:
    """A log message's notification number; 0 if it is not one of this call's (then it shows as lost and misplaced)."""
    found = re.fullmatch(rf"Notification (\d+)/{count} for {re.escape(caller)}", str(data))
    return int(found.group(1)) if found else 0


def follow(url: str, job_id: str, arrivals: Arrivals) -> None:
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", timeout=60) as response:
        for event in parse_sse(response.iter_lines()):
            if event.event == "notification":
                arrivals.append((time.monotonic(), json.loads(event.data)["index"]))
            elif event.event == "end":
                return


def rest_run(cluster: ClusterProcess, fault: signal.Signals, count: int, interval: float, rng: random.Random) -> Run:
    body = {"interval": interval, "count": count, "caller": "failover"}
    job = httpx.post(f"{cluster.replica_url(2)}/jobs", json=body).raise_for_status().json()
    arrivals: Arrivals = []
    follower = threading.Thread(target=follow, args=(cluster.replica_url(1), job["id"], arrivals), daemon=True)
    follower.start()
    cut = rng.randrange(count // 4, count // 2)
    while not arrivals or arrivals[-1][1] < cut:
        time.sleep(interval / 4)
    old = cluster.pids["r2"]
    os.kill(old, fault)
    struck = time.monotonic()
    follower.join(timeout=count * interval + 30)
    cluster.wait_for_restart("r2", old)
    return tally(arrivals, count, struck)


def completed(answer: dict[str, Any] | None, count: int) -> str | None:
    """Why a raw call's response is not a `completed` result of `count` notifications; None if it is."""
    if answer is None:
        return "no response"
    if "error" in answer:
        return f"error {answer['error']}"
    result = answer["result"].get("structuredContent") or {}
    if (result.get("status"), result.get("sent")) != ("completed", count):
        return f"result {result}"
    return None


def raw_run(
    cluster: ClusterProcess, fault: signal.Signals, args: argparse.Namespace, rng: random.Random, caller: str
) -> Run:
    """Strike the session's replica mid-call; the client resumes by hand, then calls again in the same session."""
    count, interval = args.count, args.interval
    deadline = time.monotonic() + count * interval + SLACK
    try:
        session = RawSession(cluster, args.lease)
    except (httpx.HTTPError, KeyError) as exc:
        return Run(count, 0, 0, float("inf"), 0.0, failed=2, errors=[f"initialize: {exc!r}"])
    replica = session.replica
    cut = rng.randrange(count // 4, count // 2)
    arrivals: Arrivals = []
    struck: list[tuple[float, int]] = []  # when, and whom

    def on_log(data: Any) -> None:
        arrivals.append((time.monotonic(), index_of(data, count, caller)))
        if len(arrivals) == cut:
            pid = cluster.pids[replica]
            os.kill(pid, fault)
            struck.append((time.monotonic(), pid))

    answer = session.call(1, {"interval": interval, "count": count, "caller": caller}, on_log, deadline)
    run = tally(arrivals, count, struck[0][0] if struck else None)
    run.errors = session.errors
    if not struck:
        run.errors.append("the call ended before the fault")
        run.failed += 1
    elif (why := completed(answer, count)) is not None:
        run.errors.append(f"struck call: {why}")
        run.failed += 1
    again: list[int] = []
    answer = session.call(
        2,
        {"interval": 0, "count": AGAIN, "caller": caller},
        lambda data: again.append(index_of(data, AGAIN, caller)),
        time.monotonic() + SLACK,
    )
    if (why := completed(answer, AGAIN)) is not None or again != list(range(1, AGAIN + 1)):
        run.errors.append(f"next call: {why or f'notifications {again}'}")
        run.failed += 1
    run.refused = session.refused
    if struck:
        cluster.wait_for_restart(replica, struck[0][1])
    return run


def running_replica(cluster: ClusterProcess, caller: str) -> str:
    """The replica that runs `caller`'s job: its record says ('' if none is listed yet)."""
    jobs = httpx.get(f"{cluster.base_url}/jobs", params={"status": "running"}, timeout=5).json()["items"]
    return next((str(job["replica"]) for job in jobs if job["caller"] == caller), "")


def sdk_failure(result: CallToolResult, logs: list[Any], count: int, caller: str) -> str | None:
    """Why an SDK call did not end well: an error result, or notifications other than 1..count once in order."""
    if result.is_error:
        return f"error result {result.content}"
    indexes = [index_of(data, count, caller) for data in logs]
    if indexes != list(range(1, count + 1)):
        return f"{len(indexes)} notifications, not 1..{count} in order"
    return None


async def sdk_call(
    cluster: ClusterProcess, fault: signal.Signals, count: int, interval: float, cut: int, caller: str
) -> tuple[Run, tuple[str, int] | None]:
    """The SDK's client's run, and the replica struck (with its pid) if one was."""
    arrivals: Arrivals = []
    struck: list[tuple[float, str, int]] = []
    errors: list[str] = []
    replica = ""
    received = Received()

    def on_log(received_so_far: int) -> None:
        nonlocal replica
        arrivals.append((time.monotonic(), index_of(received.logs[-1], count, caller)))
        try:
            if not replica:  # which replica runs the call
                replica = running_replica(cluster, caller)
            if received_so_far >= cut and replica and not struck:
                pid = cluster.pids[replica]
                os.kill(pid, fault)
                struck.append((time.monotonic(), replica, pid))
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            errors.append(f"finding the call's replica: {exc!r}")

    received.after_log = on_log
    done = 0  # the calls that ended well
    try:
        with anyio.fail_after(count * interval + SLACK):
            async with mcp_client(cluster.mcp_url, received=received) as client:
                arguments = {"interval": interval, "count": count, "caller": caller}
                result = await client.call_tool(TOOL_NAME, arguments)
                if not struck:
                    errors.append("the call ended before the fault")
                elif result.is_error or (result.structured_content or {}).get("status") != "completed":
                    errors.append(f"struck call: error result {result.content}")
                else:
                    done += 1
                received.after_log = None
                received.logs.clear()
                again = await client.call_tool(TOOL_NAME, {"interval": 0, "count": AGAIN, "caller": caller})
                if (why := sdk_failure(again, received.logs, AGAIN, caller)) is not None:
                    errors.append(f"next call: {why}")
                else:
                    done += 1
    except Exception as exc:  # a failed run is counted, not raised: the others still run
        errors.append(f"{type(exc).__name__}: {exc}")
        done = min(done, 1)  # whatever ended well before, the run failed at least once
    run = tally(arrivals, count, struck[0][0] if struck else None)
    run.failed = 2 - done
    run.errors = errors
    return run, (struck[0][1], struck[0][2]) if struck else None


def sdk_run(
    cluster: ClusterProcess, fault: signal.Signals, args: argparse.Namespace, rng: random.Random, caller: str
) -> Run:
    """Strike the replica running the SDK client's call; it resumes by itself, then calls again in the same session."""
    cut = rng.randrange(args.count // 4, args.count // 2)
    run, struck = anyio.run(sdk_call, cluster, fault, args.count, args.interval, cut, caller)
    if struck is not None:
        cluster.wait_for_restart(*struck)
    return run


MCP_RUNS: dict[str, Callable[[ClusterProcess, signal.Signals, argparse.Namespace, random.Random, str], Run]] = {
    "raw": raw_run,
    "sdk": sdk_run,
}


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.2f} s, p99 {p99:.2f} s, max {ordered[-1]:.2f} s"


def report(name: str, kind: str, runs: list[Run], args: argparse.Namespace) -> int:
    """Print one fault's and client kind's figures; return how many things went wrong."""
    lost, dup, order = (
        sum(run.lost for run in runs),
        sum(run.duplicated for run in runs),
        sum(run.out_of_order for run in runs),
    )
    failed, refused = sum(run.failed for run in runs), sum(run.refused for run in runs)
    calls = "" if kind == "rest" else f"failed calls {failed} of {2 * len(runs)}  "
    resumptions = f"refused resumptions {refused}  " if kind == "raw" else ""
    print(
        f"{name:8} {kind:4} runs {len(runs):3}  lost {lost}  duplicated {dup}  out of order {order}  {calls}"
        f"{resumptions}(lease {args.lease:g} s, notifications {args.interval:g} s apart)"
    )
    print(f"              resumed: {summary([run.resumed for run in runs])}")
    where = "follower" if kind == "rest" else "client"
    print(f"              stall at the {where}: {summary([run.stall for run in runs])}")
    for index, run in enumerate(runs):
        for error in run.errors[:5]:
            print(f"              run {index}: {error}")
    return lost + dup + order + failed


@dataclass
class Phase:
    name: str
    began: float = 0.0
    ended: float = 0.0
    calls: int = 0
    failed: int = 0
    broken: int = 0
    """Sessions that failed to open or close: no call of theirs, but a failure all the same."""
    errors: list[str] = field(default_factory=list)


async def rolling(cluster: ClusterProcess, clients: int) -> list[Phase]:
    """`clients` SDK clients calling the tool in a loop, while each replica in turn is SIGTERMed and restarted."""
    phases = [Phase("before"), Phase("during"), Phase("after")]
    now = [phases[0]]  # the phase under way
    stop = anyio.Event()

    def record(error: str | None) -> None:
        phase = now[0]
        phase.calls += 1
        if error is not None:
            phase.failed += 1
            phase.errors.append(error)

    async def caller(index: int) -> None:
        calls = 0
        received = Received()
        while not stop.is_set():
            try:
                async with mcp_client(cluster.mcp_url, received=received) as client:
                    while not stop.is_set():
                        name = f"roll{index}-{calls}"
                        calls += 1
                        received.logs.clear()
                        arguments = {"interval": ROLLING_INTERVAL, "count": ROLLING_COUNT, "caller": name}
                        try:
                            with anyio.fail_after(CALL_TIMEOUT):
                                result = await client.call_tool(TOOL_NAME, arguments)
                        except Exception as exc:
                            record(f"{name}: {type(exc).__name__}: {exc}")
                            break  # a new session: this one may be broken
                        why = sdk_failure(result, received.logs, ROLLING_COUNT, name)
                        record(None if why is None else f"{name}: {why}")
            except Exception as exc:
                now[0].broken += 1
                now[0].errors.append(f"client {index}'s session: {type(exc).__name__}: {exc}")
                await anyio.sleep(RESUME_EVERY)  # not a tight loop while the balancer refuses everyone

    async def restart() -> None:
        phases[0].began = time.monotonic()
        await anyio.sleep(PHASE)
        phases[0].ended = phases[1].began = time.monotonic()
        now[0] = phases[1]
        for replica in ("r1", "r2", "r3"):
            old = cluster.pids[replica]
            os.kill(old, signal.SIGTERM)
            await anyio.to_thread.run_sync(cluster.wait_for_restart, replica, old)
        phases[1].ended = phases[2].began = time.monotonic()
        now[0] = phases[2]
        await anyio.sleep(PHASE)
        stop.set()  # the calls under way end in `after`

    with anyio.fail_after(2 * PHASE + 3 * 30 + 2 * CALL_TIMEOUT):
        async with anyio.create_task_group() as load:
            for index in range(clients):
                load.start_soon(caller, index)
            load.start_soon(restart)
    phases[2].ended = time.monotonic()
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--faults", nargs="+", choices=list(FAULTS), default=list(FAULTS))
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--lease", type=float, default=3.0, help="SERVICE_LEASE_TTL of the replicas")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rolling", action="store_true", help="a rolling restart under load instead")
    parser.add_argument("--clients-count", type=int, default=6, help="the rolling restart's clients")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="failover-") as workdir:
        env = {"SERVICE_LEASE_TTL": str(args.lease), "SERVICE_SHUTDOWN_TIMEOUT": "2"}
        with running_cluster(Path(workdir), replicas=3, **env) as cluster:
            if args.rolling:
                failures += roll(cluster, args)
            for name in [] if args.rolling else args.faults:
                fault = FAULTS[name]
                for kind in args.clients:
                    runs = [
                        rest_run(cluster, fault, args.count, args.interval, rng)
                        if kind == "rest"
                        else MCP_RUNS[kind](cluster, fault, args, rng, f"{kind}-{name}-{index}")
                        for index in range(args.runs)
                    ]
                    failures += report(name, kind, runs, args)
    raise SystemExit(1 if failures else 0)


def roll(cluster: ClusterProcess, args: argparse.Namespace) -> int:
    """Run the rolling restart and print its figures; return how many calls (and sessions) failed."""
    try:
        phases = anyio.run(rolling, cluster, args.clients_count)
    except Exception as exc:  # the restart itself went wrong, or the load outlived its bound
        print(f"rolling restart failed: {type(exc).__name__}: {exc}")
        return 1
    print(
        f"rolling restart under {args.clients_count} SDK clients (calls of {ROLLING_COUNT} notifications "
        f"{ROLLING_INTERVAL:g} s apart, lease {args.lease:g} s)"
    )
    for phase in phases:
        seconds = phase.ended - phase.began
        print(
            f"{phase.name:8} {seconds:5.1f} s  calls {phase.calls:4}  calls/s {phase.calls / seconds:6.1f}  "
            f"failed calls {phase.failed}  broken sessions {phase.broken}"
        )
        for error in phase.errors[:10]:
            print(f"              {error}")
    return sum(phase.failed + phase.broken for phase in phases)


if __name__ == "__main__":
    main()
