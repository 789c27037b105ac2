"""The `mcp-notification-service` command: settings from the environment, then uvicorn."""

from __future__ import annotations

import argparse
import gc
import logging
import logging.config
import sys
import warnings

import anyio
import uvicorn
from mcp.shared.exceptions import MCPDeprecationWarning

from service.app import create_app
from service.cluster.supervisor import Supervisor
from service.settings import SettingsError, load_settings
from service.stores import check_storage
from service.stores.base import StoreError
from service.telemetry.logs import logging_config

__all__ = ["main"]

logger = logging.getLogger("service")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mcp-notification-service",
        description="Serve MCP at /mcp and the job routes (settings: SERVICE_* variables and .env).",
    )
    commands = parser.add_subparsers(dest="command")
    cluster = commands.add_parser(
        "cluster",
        help="Redis, several replicas and a load balancer on this machine",
        description="The balancer on SERVICE_PORT, replica i on SERVICE_PORT + i, and a Redis server "
        "unless SERVICE_REDIS_URL names one. Replicas that exit are restarted; Ctrl-C stops everything.",
    )
    cluster.add_argument("--replicas", type=int, default=3, choices=range(1, 10), metavar="N")
    cluster.add_argument("--balancer", choices=["caddy", "nginx"], default="caddy")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = _arguments(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"mcp-notification-service: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if arguments.command == "cluster":
        try:
            code = Supervisor(settings, replicas=arguments.replicas, balancer=arguments.balancer).run()
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"mcp-notification-service cluster: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        raise SystemExit(code)
    log_config = logging_config(
        level=settings.log_level,
        log_format=settings.log_format,
        replica=settings.replica_id,
        payloads=settings.log_payloads,
    )
    logging.config.dictConfig(log_config)
    # The SDK warns on every log notification that logging is deprecated as of 2026-07-28. This
    # service sends them to handshake-era clients, for whom it is not, and to 2026 clients only
    # when they ask: the warning says nothing an operator can act on.
    warnings.filterwarnings("ignore", "The logging capability is deprecated", MCPDeprecationWarning)
    try:
        anyio.run(check_storage, settings)
    except StoreError as exc:
        print(f"mcp-notification-service: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    app = create_app(settings)
    # Everything imported and built so far lives as long as the process: keep it out of the
    # cyclic collector's full passes, which otherwise rescan it (tens of ms each, the p99 tail).
    gc.freeze()
    # The default (a young-generation pass every 700 net allocations) runs ~200 passes a
    # second under load, and every tenth reaches the live sessions' objects: 10,000 makes
    # them rare, and cycles are still collected (docs/performance.md has the figures).
    gc.set_threshold(10_000, 10, 10)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=log_config,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    uvicorn.Server(config).run()
