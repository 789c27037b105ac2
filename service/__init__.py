"""A FastAPI service that serves MCP over StreamableHTTP at /mcp and streams job notifications."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("mcp-notification-service")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
