"""A bare Starlette endpoint that answers each POST with a small SSE response: the load generator's ceiling.

The response has the shape of an MCP tool call's: a priming event, one notification and
the result, sent as three chunks. Nothing is parsed or stored, so whatever rate the load
generator reaches here bounds what it can measure against the MCP servers.

    uv run python -m bench.bare_server --port 3001
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

EVENTS = (
    b"id: 1\r\ndata: \r\n\r\n",
    b'event: message\r\nid: 2\r\ndata: {"method":"notifications/message","params":{"level":"info",'
    b'"logger":"bench","data":"Notification 1/1 for bench"},"jsonrpc":"2.0"}\r\n\r\n',
    b'event: message\r\nid: 3\r\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text",'
    b'"text":"Sent 1 notifications to bench"}],"isError":false}}\r\n\r\n',
)


async def events() -> AsyncIterator[bytes]:
    for event in EVENTS:
        yield event


async def sse(request: Request) -> StreamingResponse:
    await request.body()
    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


app = Starlette(routes=[Route("/mcp", sse, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=3001)
    args = parser.parse_args()
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )


if __name__ == "__main__":
    main()
