"""Builds are reproducible: every installed dependency is pinned in pyproject.toml, at the version installed."""

from __future__ import annotations

import tomllib
from importlib.metadata import distributions

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harness.service import REPO

pytestmark = pytest.mark.in_process


def test_every_installed_package_is_pinned_at_its_installed_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = [Requirement(line) for line in project["tool"]["uv"]["constraint-dependencies"]]
    pinned = {
        canonicalize_name(pin.name): str(pin.specifier).removeprefix("==")
        for pin in pins
        if pin.marker is None or pin.marker.evaluate()
    }
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in distributions()
        if canonicalize_name(dist.metadata["Name"]) != "mcp-notification-service"
    }
    assert all(str(pin.specifier).startswith("==") for pin in pins), "pins are exact"
    unpinned = sorted(set(installed) - set(pinned))
    assert not unpinned, f"installed but not pinned (run scripts/pin_dependencies.py): {unpinned}"
    moved = {name: (pinned[name], version) for name, version in installed.items() if pinned[name] != version}
    assert not moved, f"installed versions differ from the pins (pinned, installed): {moved}"
