"""The balancer configurations in `deploy/` are the ones the cluster command renders, and both programs accept them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.service import REPO
from service.cluster.balancer import (
    CADDY_HINT,
    NGINX_HINT,
    NGINX_TEMP,
    Replica,
    caddy_binary,
    caddy_config,
    nginx_binary,
    nginx_config,
)
from tests.support import unavailable

DEFAULT = [Replica(f"r{index}", 8000 + index) for index in (1, 2, 3)]


def test_deploy_holds_the_rendered_configurations() -> None:
    """Regenerate with `uv run python -m service.cluster.balancer` after changing the renderer."""
    assert (REPO / "deploy" / "Caddyfile").read_text() == caddy_config(8000, DEFAULT)
    assert (REPO / "deploy" / "nginx.conf").read_text() == nginx_config(8000, DEFAULT)


def test_caddy_accepts_its_configuration(tmp_path: Path) -> None:
    binary = caddy_binary()
    if binary is None:
        unavailable(CADDY_HINT)
    path = tmp_path / "Caddyfile"
    path.write_text(caddy_config(8000, DEFAULT))
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    checked = subprocess.run(
        [binary, "validate", "--config", str(path), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("replicas", [1, 3])
def test_nginx_accepts_its_configuration(tmp_path: Path, replicas: int) -> None:
    binary = nginx_binary()
    if binary is None:
        unavailable(NGINX_HINT)
    for kind in NGINX_TEMP:
        (tmp_path / kind).mkdir()
    path = tmp_path / "nginx.conf"
    path.write_text(nginx_config(8000, DEFAULT[:replicas], tmp_path))
    checked = subprocess.run(
        [binary, "-t", "-c", str(path), "-p", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
