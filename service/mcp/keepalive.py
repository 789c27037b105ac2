"""Keep-alive for the SDK's 2026-07-28 path, at the service's `SERVICE_SSE_PING_INTERVAL`.

A 2026-07-28 request is answered by the SDK's `handle_modern_request`, whose SSE response
sends `: ping` only every `_SSE_PING_INTERVAL` seconds, a private module constant (15 s), and
no option reaches it. On that path a cut stream cancels the call and its job, so a stream
must be kept alive at the interval the proxies in front expect, as the 2025-11-25 streams
are (`service.sse`). The constant is read at each request: setting it is the whole seam, and
it holds for the process (every service in it shares the last interval set).
`tests/mcp/test_sdk_seam.py` fails if the constant goes or the function that reads it
changes. Upstream, a `ping_interval` option of `StreamableHTTPSessionManager` handed to
`handle_modern_request` would remove it.
"""

from __future__ import annotations

from mcp.server import _streamable_http_modern as modern

__all__ = ["PING_INTERVAL_NAME", "set_modern_ping_interval"]

PING_INTERVAL_NAME = "_SSE_PING_INTERVAL"


def set_modern_ping_interval(seconds: float) -> None:
    """Ping idle 2026-07-28 streams every `seconds` (it is also how long a call may stay silent before its
    answer commits to SSE rather than one JSON body)."""
    setattr(modern, PING_INTERVAL_NAME, seconds)
