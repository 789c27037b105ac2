"""What operations cost: tool calls/s and p99 with metrics and JSON logs on against off, and traced.

    uv run python -m bench.operations            # 5 rounds of 5 s windows (about 3 minutes)
    uv run python -m bench.operations --quick    # 1 round of 1 s windows

Three configurations of the service (SQLite), in rotated order each round, 10 sessions of
closed-loop count=1 tool calls, the server on core 0 and the load generator on core 1, all at
`SERVICE_LOG_LEVEL=INFO` with `SERVICE_ACCESS_LOG=true`, so that every request and every job writes its lines:

- `off`: `SERVICE_METRICS=false`, text logs;
- `on`: metrics (`/metrics`, the HTTP, MCP and store instruments) and `SERVICE_LOG_FORMAT=json`;
- `traced`: `on`, plus `OTEL_EXPORTER_OTLP_ENDPOINT` naming an OTLP/HTTP receiver in this
  process (on core 1: the collector's work is not the service's), which acknowledges each export.

Prints medians, and the ratios of `on` and `traced` to `off` (target for `on`: at most 5% fewer calls/s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from typing_extensions import override

from bench.run import freeze_code
from bench.servers import LOADGEN_CORE, ROOT, SERVICE_SQLITE, loadgen, log, running

CONFIGS = ("off", "on", "traced")
SESSIONS = 10


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, list[int]]]:
    """An OTLP/HTTP endpoint that answers 200 to every export; yields its URL and the exports' sizes."""
    received: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(len(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        @override
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def settings_of(config: str, endpoint: str) -> dict[str, str]:
    settings = {"SERVICE_LOG_LEVEL": "INFO", "SERVICE_ACCESS_LOG": "true"}
    if config == "off":
        return settings | {"SERVICE_METRICS": "false"}
    settings |= {"SERVICE_METRICS": "true", "SERVICE_LOG_FORMAT": "json"}
    if config == "traced":
        settings |= {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "operations.json")
    args = parser.parse_args()
    rounds, duration = (1, 1.0) if args.quick else (5, 5.0)
    os.sched_setaffinity(0, {LOADGEN_CORE})  # this process runs the receiver
    out: dict[str, list[dict[str, Any]]] = {config: [] for config in CONFIGS}
    with otlp_receiver() as (endpoint, exports), tempfile.TemporaryDirectory(prefix="bench-operations-") as tmp:
        snapshot = Path(tmp)
        log(f"code: {freeze_code(snapshot)}")  # edits to the tree while this runs change nothing it measures
        for index in range(rounds):
            order = CONFIGS[index % 3 :] + CONFIGS[: index % 3]
            log(f"round {index + 1}/{rounds}: {', '.join(order)}")
            for config in order:
                with running(SERVICE_SQLITE, code=snapshot, settings=settings_of(config, endpoint)) as server:
                    arguments = ["--sessions", str(SESSIONS), "--duration", str(duration), "--warmup", "1"]
                    result = loadgen(server, "tools", *arguments, timeout=duration + 120)
                if result is None:
                    continue
                out[config].append(result)
                per_call = 1e6 * result["server_cpu"] / result["calls_per_s"]
                log(
                    f"  {config:7} {result['calls_per_s']:7.0f} calls/s  p99 {result['p99_ms']:5.1f} ms"
                    f"  server {per_call:5.0f} us/call"
                )
        log(f"the receiver took {len(exports)} exports ({sum(exports) / 1e6:.1f} MB)")
    medians = {
        config: {key: statistics.median(r[key] for r in results) for key in ("calls_per_s", "p99_ms")}
        for config, results in out.items()
        if results
    }
    log("medians:")
    for config, figures in medians.items():
        ratio = figures["calls_per_s"] / medians["off"]["calls_per_s"] if "off" in medians else float("nan")
        log(
            f"  {config:7} {figures['calls_per_s']:7.0f} calls/s  p99 {figures['p99_ms']:5.1f} ms"
            f"  calls/s {ratio:.3f}x of off"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rounds": out, "medians": medians}, indent=2))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
