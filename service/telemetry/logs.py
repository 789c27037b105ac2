"""One log format for the service and uvicorn: text for people, or one JSON object per line.

`logging_config` is handed to uvicorn (`log_config`), which applies it before it logs
anything, so that its lines and ours share the format and the context fields.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

from typing_extensions import override

from service.telemetry import context

__all__ = ["ContextFilter", "JsonFormatter", "LogFormat", "logging_config"]

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"

PAYLOAD_LOGGERS = ("sse_starlette", "mcp.server.sse", "mcp.server.streamable_http", "mcp.shared")
"""Loggers that write messages' contents at DEBUG: kept at INFO unless `SERVICE_LOG_PAYLOADS` asks for them."""


class ContextFilter(logging.Filter):
    """Adds the request id, MCP session id, job id and replica to every record (None where unknown)."""

    def __init__(self, replica: str = "") -> None:
        super().__init__()
        self.replica = replica or None

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        # A field given in `extra` (a job's id, logged from outside its task) wins over the context.
        fields = {
            "request_id": getattr(record, "request_id", None) or context.request_id.get(),
            "session_id": getattr(record, "session_id", None) or context.session_id.get(),
            "job_id": getattr(record, "job_id", None) or context.job_id.get(),
            "replica": self.replica,
        }
        shown = " ".join(f"{name.removesuffix('_id')}={value}" for name, value in fields.items() if value)
        record.__dict__.update(fields, context=f" [{shown}]" if shown else "")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ms), level, logger, message, and the context that is known."""

    def __init__(self) -> None:
        super().__init__()
        self._second = (-1, "")
        """The last second formatted: lines come many to a second."""

    @override
    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        if self._second[0] != seconds:
            self._second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
        line: dict[str, Any] = {
            "timestamp": f"{self._second[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("request_id", "session_id", "job_id", "replica"):
            value = getattr(record, field, None)
            if value:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(*, level: str, log_format: LogFormat, replica: str = "", payloads: bool = False) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the root logger and uvicorn's, in one format."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format == "json" else {"format": TEXT_FORMAT, "datefmt": None}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "service",
        "filters": ["context"],
        "stream": "ext://sys.stderr",
    }
    quiet = {name: {"level": "INFO"} for name in PAYLOAD_LOGGERS} if level == "DEBUG" and not payloads else {}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter, "replica": replica}},
        "formatters": {"service": formatter},
        "handlers": {"default": handler},
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {
            # uvicorn's own handlers would print a second, differently formatted copy.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": level, "handlers": [], "propagate": True},
            **quiet,
        },
    }
