"""Fault bench: drop the connection at a random point of a fast stream, resume, count what arrived.

For each store and reconnect delay, every client kind runs `--runs` times: a 1000-notification
job, 1 ms apart, cut through a TCP proxy at a random notification (half the cuts leave the
server's side open, so the server has not noticed the drop when the client comes back).
Prints lost, duplicated and out-of-order notifications and missing results; all must be 0.
A run counts only if the proxy saw a live connection cut (`Outcome.cuts`): the runs in which
none was are shown as `no cut` and fail the bench too, since they tested no resumption.

    uv run python -m bench.resumption                 # the full matrix (about 20 minutes)
    uv run python -m bench.resumption --runs 2 --delays 0   # a smoke run
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from harness import faults
from harness.clients import ensure_node_client
from harness.service import running_service

Scenario = Callable[[int, int, float, bool, random.Random], Awaitable[faults.Outcome]]

SCENARIOS: dict[str, Scenario] = {
    "python-auto": lambda port, count, delay, notices, rng: faults.python_auto(
        port, count, server_notices=notices, rng=rng
    ),
    "python-explicit": lambda port, count, delay, notices, rng: faults.python_explicit(
        port, count, delay=delay, rng=rng
    ),
    "typescript-auto": lambda port, count, delay, notices, rng: faults.typescript_auto(
        port, count, server_notices=notices, rng=rng
    ),
    "typescript-explicit": lambda port, count, delay, notices, rng: faults.typescript_explicit(
        port, count, delay=delay, rng=rng
    ),
    "get-stream": lambda port, count, delay, notices, rng: faults.standalone_get(
        port, count, server_notices=notices, rng=rng
    ),
}


async def bench(args: argparse.Namespace) -> int:
    if any(name.startswith("typescript") for name in args.clients) and (problem := ensure_node_client()):
        raise SystemExit(problem)
    rng = random.Random(args.seed)
    header = (
        f"{'store':7} {'delay':>6} {'client':20} {'runs':>4} {'cuts':>5} {'no cut':>6} {'lost':>5} {'dup':>4} "
        f"{'order':>5} {'no result':>9}"
    )
    print(header)
    print("-" * len(header))
    failures = invalid = 0
    for store in args.stores:
        for delay in args.delays:
            env = {
                "SERVICE_STORE": store,
                "SERVICE_SSE_RETRY_MS": str(int(delay * 1000)),
                "SERVICE_ALLOWED_HOSTS": '["127.0.0.1:*"]',
                "SERVICE_LOG_LEVEL": "ERROR",
            }
            with tempfile.TemporaryDirectory() as workdir, running_service(Path(workdir), **env) as service:
                for client in args.clients:
                    lost = duplicated = disordered = missing = cuts = uncut = 0
                    for run in range(args.runs):
                        outcome = await SCENARIOS[client](service.port, args.count, delay, run % 2 == 0, rng)
                        cuts += outcome.cuts
                        uncut += outcome.cuts == 0
                        lost += outcome.lost
                        duplicated += outcome.duplicated
                        disordered += outcome.out_of_order
                        missing += not outcome.result_ok
                    failures += lost + duplicated + disordered + missing
                    invalid += uncut
                    print(
                        f"{store:7} {delay:>5}s {client:20} {args.runs:>4} {cuts:>5} {uncut:>6} {lost:>5} "
                        f"{duplicated:>4} {disordered:>5} {missing:>9}",
                        flush=True,
                    )
    verdict = "PASS" if failures == invalid == 0 else "FAIL"
    print(f"\n{verdict}: {failures} faults in total; {invalid} runs in which no live connection was cut (not valid)")
    return 1 if failures or invalid else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 0.1, 1.0])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "memory"])
    parser.add_argument("--clients", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--seed", type=int, default=2026)
    raise SystemExit(anyio.run(bench, parser.parse_args()))


if __name__ == "__main__":
    main()
