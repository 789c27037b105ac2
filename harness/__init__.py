"""What the tests and the benchmarks share: the real service as a process, clients, faults.

`service` runs `python -m service` under uvicorn on 127.0.0.1; `clients` holds the SDK's MCP
client and the raw requests and the TypeScript client the tests also drive; `sse` parses
server-sent events; `proxy` is a TCP proxy that cuts connections on demand and `faults` the
resumption scenarios run through it. Nothing here imports pytest: `tests/support.py` holds
what only tests need.
"""
