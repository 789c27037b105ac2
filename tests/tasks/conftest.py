"""One service with two users for the tasks tests: a task is its maker's, and the other user's requests for it fail."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness.service import ServiceProcess, running_service

ALICE, BOB = "alice-task-token", "bob-task-token"


@pytest.fixture(scope="package")
def users_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = {"SERVICE_AUTH_TOKENS": json.dumps({"alice": ALICE, "bob": BOB})}
    with running_service(tmp_path_factory.mktemp("tasks"), **env) as running:
        yield running
