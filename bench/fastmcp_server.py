"""fastmcp's streamable HTTP server, as a peer for the benchmark (#18): the same tool, resumable.

A `FastMCP` server with one tool, `start-notification-stream` (`interval`, `count`, `caller`),
which sends `count` log notifications on the call's own stream (`Context.info`), `interval`
seconds apart, and answers with a text result; `http_app` with fastmcp's own in-memory
`EventStore`, so that a dropped stream can be resumed as with the other servers. Served by
uvicorn as the other Python servers are (uvloop, httptools, access log off).

    uv run python -m bench.fastmcp_server --port 3000
"""

from __future__ import annotations

import argparse
import logging

import anyio
from fastmcp import Context, FastMCP
from fastmcp.server.event_store import EventStore

from bench.example_server import serve

TOOL_NAME = "start-notification-stream"


def build_server() -> FastMCP:
    server = FastMCP("fastmcp-peer")

    @server.tool(name=TOOL_NAME, description="Send `count` log notifications, `interval` seconds apart")
    async def start_notification_stream(interval: float, count: int, caller: str, ctx: Context) -> str:
        for n in range(1, count + 1):
            await ctx.info(f"[{n}/{count}] notification for {caller!r}; resume with Last-Event-ID after a disconnect")
            if n < count:
                await anyio.sleep(interval)
        return f"Sent {count} notifications with {interval}s interval for {caller}"

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_server().http_app(path="/mcp", event_store=EventStore())
    serve(app, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
