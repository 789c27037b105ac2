"""MCP over StreamableHTTP with notification jobs, for a FastAPI app: the public API.

    from service import NotificationService, Settings

    notifications = NotificationService(Settings(), authenticate=who_is_calling)
    ...  # enter `notifications.running()` in the app's lifespan
    notifications.install(app, prefix="/notify")

Each name is imported when it is first used, so `import service` costs almost nothing, and
the app loads only what it uses (a Redis client only with the Redis store, OpenTelemetry's
SDK only with tracing configured). Everything outside `__all__` is private, apart from the
resumable MCP core, `service.mcp`, which a host with a `Server` of its own can take alone, and
`service.tasks.client`, which lets the Python SDK's `Client` drive 2026-07-28 tasks.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from service.version import __version__

if TYPE_CHECKING:
    from service.app import create_app
    from service.auth import Authenticate
    from service.notification_service import NotificationService
    from service.settings import Settings
    from service.tools.base import McpTool, ToolHandler

__all__ = ["Authenticate", "McpTool", "NotificationService", "Settings", "ToolHandler", "__version__", "create_app"]

_HOMES = {
    "Authenticate": "service.auth",
    "McpTool": "service.tools.base",
    "NotificationService": "service.notification_service",
    "Settings": "service.settings",
    "ToolHandler": "service.tools.base",
    "create_app": "service.app",
}


def __getattr__(name: str) -> Any:
    """A public name, from its module on first use (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'service' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
