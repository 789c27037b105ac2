"""A lean MCP-over-HTTP load generator: raw HTTP/1.1 on asyncio (uvloop), parsed by httptools.

Speaks the 2025-11-25 (handshake) era of StreamableHTTP: `initialize`, then
`notifications/initialized`, then `tools/call` POSTs whose SSE responses are read to
the end, all on one keep-alive connection per session, with `Mcp-Session-Id` and
`MCP-Protocol-Version` on every request after the first. Requests are pre-encoded and
responses are parsed in C, so a client costs a few microseconds per event.

Each scenario prints one JSON object on stdout:

    python -m bench.loadgen tools --port P --sessions 10 --duration 5 [--server-pid PID]
    python -m bench.loadgen tools --port P --sessions 100 --raw        # a bare SSE endpoint, no MCP
    python -m bench.loadgen notify --port P --count 10000 --reps 3
    python -m bench.loadgen rss --port P --sessions 1000 --server-pid PID
    python -m bench.loadgen replay --port P --stages 1000 99000 900000 --replays 60

`--server-pid` adds the server's CPU use over the measured window (and is required for
`rss`); the generator's own CPU use is always reported, as evidence that it is not the
bottleneck.
"""
