"""What only the tests need besides the shared harness (`harness/`): skipping, polling."""

from __future__ import annotations

import os
import time
from typing import Any, NoReturn

import pytest

__all__ = ["unavailable", "wait_for"]


def unavailable(problem: str) -> NoReturn:
    """Skip a test whose tools are missing here; in CI (where they must be installed) fail it."""
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
