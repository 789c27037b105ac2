"""Serve the real app plus the conformance fixture tools: `python -m tests.conformance.serve`.

Starts like `service.cli` (same settings, storage check and uvicorn options) so the suite
tests what ships, but always binds 127.0.0.1: the fixtures are test-only tools.
"""

from __future__ import annotations

import logging
import sys

import anyio
import uvicorn

from service.app import create_app
from service.settings import SettingsError, load_settings
from service.stores import check_storage
from service.stores.base import StoreError
from tests.conformance.fixtures import fixture_tools

HOST = "127.0.0.1"


def main() -> None:
    try:
        settings = load_settings()
        anyio.run(check_storage, settings)
    except (SettingsError, StoreError) as exc:
        print(f"conformance server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings, extra_tools=fixture_tools()),
        host=HOST,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )


if __name__ == "__main__":
    main()
