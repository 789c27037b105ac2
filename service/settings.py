"""Configuration, read from `SERVICE_*` environment variables and an optional `.env` file."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as UnparsableSetting

__all__ = ["ENV_PREFIX", "LOOPBACK_HOSTS", "Settings", "SettingsError", "StoreBackend", "load_settings"]

ENV_PREFIX = "SERVICE_"

LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1")
"""Names of this machine that no other machine can reach: always accepted as `Host`, and safe without auth."""

LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),  # `debug` works too
]


class StoreBackend(StrEnum):
    """Where job records and event history live."""

    SQLITE = "sqlite"
    MEMORY = "memory"
    REDIS = "redis"
    """Shared by replicas: jobs, their logs and the sessions' logs, visible and controllable from each."""


class Settings(BaseSettings):
    """Every knob of the service; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    # Server
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    log_level: LogLevel = "INFO"
    log_format: Literal["text", "json"] = "text"
    log_payloads: bool = False
    """At DEBUG, also the loggers that write messages' contents (the SDK's, sse-starlette's)."""
    access_log: bool = False
    """uvicorn's line per request. Off by default: it costs about a tenth of the calls/s (`docs/performance.md`),
    and `/metrics` already counts every request by route and status, with its latency."""
    metrics: bool = True
    """`/metrics` and the per-request instruments; false takes them away (the job counters stay, unexported)."""
    metrics_public: bool = False
    """`/metrics` without a token even when authentication is on (for a scraper on a private network)."""
    json_response: bool = False
    shutdown_timeout: Annotated[int, Field(ge=1)] = 3

    # Transport security: Host/Origin values accepted on /mcp besides the ones derived from host and port.
    allowed_hosts: list[str] = []
    allowed_origins: list[str] = []

    # Authentication: principal name -> token, or -> "sha256:<hex digest>". Empty: authentication off.
    auth_tokens: dict[str, SecretStr] = {}
    # Browser origins allowed by CORS (and on /mcp by the Origin check).
    cors_origins: list[str] = []
    max_request_body: Annotated[int, Field(ge=1024)] = 1_048_576
    max_header_bytes: Annotated[int, Field(ge=1024)] = 32_768

    # MCP sessions
    session_idle_timeout: Annotated[float, Field(gt=0)] = 1800.0
    max_sessions: Annotated[int, Field(ge=1)] = 10_000
    sse_retry_ms: Annotated[int, Field(ge=0)] | None = None
    sse_ping_interval: Annotated[float, Field(gt=0)] = 15.0
    mcp_fast_transport: bool = True
    task_min_seconds: Annotated[float, Field(ge=0)] = 1.0

    # Storage
    store: StoreBackend = StoreBackend.SQLITE
    sqlite_path: Path = Path("data/service.db")
    sqlite_flush_interval: Annotated[float, Field(gt=0, le=5)] = 0.05
    event_retention: Annotated[float, Field(ge=0)] = 3600.0
    stream_retention: Annotated[float, Field(ge=0)] = 300.0
    job_retention: Annotated[float, Field(ge=0)] = 86400.0
    max_stored_jobs: Annotated[int, Field(ge=0)] = 100_000
    max_events_per_session: Annotated[int, Field(ge=100)] = 100_000
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")] = "mns"

    # Replicas (with SERVICE_STORE=redis)
    replica_id: Annotated[str, Field(pattern=r"^([A-Za-z0-9_-]{1,32})?$")] = ""
    lease_ttl: Annotated[float, Field(ge=0.5, le=300)] = 3.0

    # Limits of the notification tool and of POST /jobs
    max_count: Annotated[int, Field(ge=1)] = 100_000
    min_interval: Annotated[float, Field(ge=0)] = 0.0
    max_interval: Annotated[float, Field(gt=0)] = 3600.0
    max_caller_length: Annotated[int, Field(ge=1)] = 256
    max_jobs: Annotated[int, Field(ge=1)] = 1000
    max_jobs_per_session: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _job_logs_fit(self) -> Settings:
        # A job's log is capped like a session's; a larger count would lose its oldest notifications.
        if self.max_count > self.max_events_per_session:
            raise ValueError(f"{ENV_PREFIX}MAX_COUNT must not exceed {ENV_PREFIX}MAX_EVENTS_PER_SESSION")
        return self

    def _host_names(self) -> list[str]:
        """The bound address and the loopback names, as they appear in a `Host` header (IPv6 in brackets)."""
        return sorted({f"[{name}]" if ":" in name else name for name in (self.host, *LOOPBACK_HOSTS)})

    def mcp_allowed_hosts(self) -> list[str]:
        """Host header values the DNS-rebinding check accepts: the bound address plus loopback names."""
        names = self._host_names()
        return [*(f"{name}:{self.port}" for name in names), *names, *self.allowed_hosts]

    def mcp_allowed_origins(self) -> list[str]:
        """Origin header values the DNS-rebinding check accepts (browsers send one; most clients don't)."""
        origins = [f"http://{name}:{self.port}" for name in self._host_names()]
        return [*origins, *self.allowed_origins, *self.cors_origins]

    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")


class SettingsError(Exception):
    """Raised with a message a person can act on when the environment holds a bad value."""


def load_settings() -> Settings:
    """Read the settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings()
    except UnparsableSetting as exc:  # a list or mapping setting whose value is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        variable = f"{ENV_PREFIX}{found.group(1).upper()}" if found else "a SERVICE_ variable"
        raise SettingsError(f"invalid configuration:\n  {variable}: expected a JSON value ({exc})") from None
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            if not error["loc"]:  # a rule across settings: its message names them
                lines.append(error["msg"].removeprefix("Value error, "))
                continue
            variable = f"{ENV_PREFIX}{str(error['loc'][0]).upper()}"
            lines.append(f"{variable}={error.get('input')!r}: {error['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
