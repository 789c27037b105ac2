"""Settings come from the environment and `.env`; `.env.example` documents every one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.service import REPO, running_service
from service.settings import Settings


def example_settings() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return dict(pairs)


def test_env_example_lists_every_setting_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in os.environ:
        if key.startswith("SERVICE_"):
            monkeypatch.delenv(key)
    assert set(example_settings()) == {f"SERVICE_{name.upper()}" for name in Settings.model_fields}
    assert Settings(_env_file=REPO / ".env.example") == Settings(_env_file=None)  # type: ignore[call-arg]


def run_cli(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
    return subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SERVICE_PORT", "abc"),
        ("SERVICE_STORE", "postgres"),
        ("SERVICE_JSON_RESPONSE", "maybe"),
        ("SERVICE_AUTH_TOKENS", "alice:secret"),
    ],
)
def test_a_bad_value_stops_start_up_with_a_message_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    result = run_cli(tmp_path, **{variable: value})
    assert result.returncode == 2
    assert variable in result.stderr
    if variable != "SERVICE_AUTH_TOKENS":  # a token is never echoed
        assert repr(value) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SERVICE_STORE=memory\nSERVICE_MAX_COUNT=7\n")
    with running_service(tmp_path) as service:
        assert httpx.get(f"{service.base_url}/healthz").json()["store"] == "memory"
        refused = httpx.post(f"{service.base_url}/jobs", json={"interval": 0, "count": 8, "caller": "x"})
        assert refused.status_code == 422
        assert "at most 7" in refused.json()["detail"][0]["msg"]


def test_the_log_level_is_read_in_any_case() -> None:
    assert Settings(log_level="debug").log_level == Settings(log_level="Debug").log_level == "DEBUG"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_level"):
        Settings(log_level="chatty")  # type: ignore[arg-type]


def test_settings_that_contradict_each_other_are_refused(tmp_path: Path) -> None:
    result = run_cli(tmp_path, SERVICE_MAX_COUNT="500", SERVICE_MAX_EVENTS_PER_SESSION="200")
    assert result.returncode == 2
    assert "SERVICE_MAX_COUNT" in result.stderr
    assert "SERVICE_MAX_EVENTS_PER_SESSION" in result.stderr
