"""Soak bench: many MCP sessions running notification jobs back to back for a while.

Each session calls `start-notification-stream` again and again (random count and interval)
and checks that every notification of every call arrived, once and in order. Prints the
service's RSS at the start and the end, jobs run, notifications lost, and errors.

    uv run python -m bench.soak                      # 50 sessions, 2 minutes
    uv run python -m bench.soak --sessions 5 --seconds 10
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import psutil

from tests.support import TOOL, Received, mcp_client, running_service


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
                    TOOL, {"interval": rng.choice([0, 0.005, 0.01]), "count": count, "caller": caller}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--seed", type=int, default=4)
    raise SystemExit(anyio.run(soak, parser.parse_args()))


if __name__ == "__main__":
    main()
