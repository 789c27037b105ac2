"""What importing the service costs a host: time and peak RSS of a fresh interpreter, and what it loaded.

Each probe runs `--runs` times in a fresh interpreter; the median is printed. `--source DIR`
runs the probes against another checkout of the package (a `git worktree` of an older
commit), for a before/after comparison; a probe that needs names the old code lacks is
reported as such.

    uv run python -m bench.startup [--runs 5] [--source /tmp/old]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

PROBES = {
    "import service": "import service",
    "import service.mcp": "import service.mcp",
    "host app": (
        "from fastapi import FastAPI; from service import NotificationService, Settings; "
        "app = FastAPI(); NotificationService(Settings(store='sqlite', sqlite_path=':memory:')).install(app, '/notify')"
    ),
    "create_app": (
        "from service.app import create_app; from service.settings import Settings; "
        "create_app(Settings(store='sqlite', sqlite_path=':memory:'))"
    ),
}

MEASURE = """
import json, resource, sys, time
began = time.perf_counter()
exec({probe!r})
elapsed = time.perf_counter() - began
loaded = lambda *roots: any(name.split(".")[0] in roots for name in sys.modules)
print(json.dumps({{
    "ms": elapsed * 1000,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "modules": len(sys.modules),
    "redis": loaded("redis", "hiredis"),
    "otel_api": loaded("opentelemetry"),
    "otel_sdk": any(name.startswith("opentelemetry.sdk") for name in sys.modules),
}}))
"""


def run(probe: str, source: str | None) -> dict[str, float | bool] | None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SERVICE_", "OTEL_"))}
    if source:
        env["PYTHONPATH"] = source
    done = subprocess.run(
        [sys.executable, "-c", MEASURE.format(probe=probe)],
        capture_output=True,
        text=True,
        env=env,
        cwd=source,  # `-c` puts the working directory first on the path
        timeout=120,
    )
    if done.returncode != 0:
        return None
    result: dict[str, float | bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--source", help="a checkout whose `service` package to measure instead")
    arguments = parser.parse_args()
    print(f"{'probe':20} {'ms':>8} {'max RSS MB':>11} {'modules':>8}  redis  otel-api  otel-sdk")
    for name, probe in PROBES.items():
        results = [run(probe, arguments.source) for _ in range(arguments.runs)]
        if any(result is None for result in results):
            print(f"{name:20} (not available in this source)")
            continue
        ok = [result for result in results if result is not None]
        ms = statistics.median(float(result["ms"]) for result in ok)
        rss = statistics.median(float(result["rss_mb"]) for result in ok)
        first = ok[0]
        print(
            f"{name:20} {ms:8.0f} {rss:11.1f} {int(first['modules']):8d}  {first['redis']!s:5}  "
            f"{first['otel_api']!s:8}  {first['otel_sdk']!s:8}"
        )


if __name__ == "__main__":
    main()
