"""The installed distribution's version: in the OpenAPI document, the MCP server's `serverInfo` and the traces."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("mcp-notification-service")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
