"""`python -m bench.loadgen SCENARIO --port P ...`: run one scenario, print its figures as one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import uvloop

from bench.loadgen.scenarios import SCENARIOS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/mcp")
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument(
        "--watch-pid",
        type=int,
        action="append",
        default=[],
        help="tools: more processes whose CPU to report; notify: more processes to wait for (a store's)",
    )
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--count", type=int, default=1, help="notifications per tool call")
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds (tools)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (tools)")
    parser.add_argument("--raw", action="store_true", help="tools: a bare SSE endpoint, no MCP handshake")
    parser.add_argument("--reps", type=int, default=3, help="notify: calls measured")
    parser.add_argument("--warmup-sessions", type=int, default=10, help="rss")
    parser.add_argument("--settle", type=float, default=1.0, help="rss, replay: seconds to wait before sampling")
    parser.add_argument("--stages", type=int, nargs="+", default=[1000, 99_000, 900_000], help="replay: fill calls")
    parser.add_argument("--window", type=int, default=10, help="replay: events replayed")
    parser.add_argument("--replays", type=int, default=60, help="replay: per stage")
    parser.add_argument("--pause", type=float, default=0.005, help="replay: seconds between replays")
    parser.add_argument("--replay-timeout", type=float, default=10.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = uvloop.run(SCENARIOS[args.scenario](args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
