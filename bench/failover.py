"""Failover bench: a replica that runs a REST job dies (kill -9) or drains (SIGTERM), and a follower watches.

A cluster of three replicas on one Redis behind Caddy (`service.cluster`). Each run starts a
job on replica r2 (`--count` notifications, `--interval` apart), follows it from r1 over
`/jobs/{id}/events`, and at a random notification kills r2 (or stops it with SIGTERM, a
rolling restart's step). Prints, over the runs: notifications lost, duplicated and out of
order at the follower (all must be 0), how long the follower waited from the fault to its next
notification (`resumed`: the survivor's first one, unless the dying replica had written the next
one already), and the longest gap between two notifications it saw (`stall`), as median, p99
and max.

    uv run python -m bench.failover                          # 20 runs of each fault (a few minutes)
    uv run python -m bench.failover --runs 3 --faults kill   # a smoke run
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.cluster import ClusterProcess, running_cluster
from harness.sse import parse_sse

FAULTS = {"kill": signal.SIGKILL, "sigterm": signal.SIGTERM}


@dataclass
class Run:
    lost: int
    duplicated: int
    out_of_order: int
    resumed: float
    stall: float


def follow(url: str, job_id: str, arrivals: list[tuple[float, int]]) -> None:
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", timeout=60) as response:
        for event in parse_sse(response.iter_lines()):
            if event.event == "notification":
                arrivals.append((time.monotonic(), json.loads(event.data)["index"]))
            elif event.event == "end":
                return


def one_run(cluster: ClusterProcess, fault: signal.Signals, count: int, interval: float, rng: random.Random) -> Run:
    body = {"interval": interval, "count": count, "caller": "failover"}
    job = httpx.post(f"{cluster.replica_url(2)}/jobs", json=body).raise_for_status().json()
    arrivals: list[tuple[float, int]] = []
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
    indexes = [index for _, index in arrivals]
    after = [at for at, index in arrivals if at > struck]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(arrivals)]
    return Run(
        lost=len(set(range(1, count + 1)) - set(indexes)),
        duplicated=len(indexes) - len(set(indexes)),
        out_of_order=sum(1 for a, b in itertools.pairwise(indexes) if b <= a),
        resumed=(after[0] - struck) if after else float("inf"),
        stall=max(gaps, default=0.0),
    )


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.2f} s, p99 {p99:.2f} s, max {ordered[-1]:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--faults", nargs="+", choices=list(FAULTS), default=list(FAULTS))
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--lease", type=float, default=3.0, help="SERVICE_LEASE_TTL of the replicas")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="failover-") as workdir:
        env = {"SERVICE_LEASE_TTL": str(args.lease), "SERVICE_SHUTDOWN_TIMEOUT": "2"}
        with running_cluster(Path(workdir), replicas=3, **env) as cluster:
            for name in args.faults:
                runs = [one_run(cluster, FAULTS[name], args.count, args.interval, rng) for _ in range(args.runs)]
                lost, dup, order = (
                    sum(getattr(run, field) for run in runs) for field in ("lost", "duplicated", "out_of_order")
                )
                failures += lost + dup + order
                print(
                    f"{name:8} runs {len(runs):3}  lost {lost}  duplicated {dup}  out of order {order}  "
                    f"(lease {args.lease:g} s, notifications {args.interval:g} s apart)"
                )
                print(f"         resumed: {summary([run.resumed for run in runs])}")
                print(f"         stall at the follower: {summary([run.stall for run in runs])}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
