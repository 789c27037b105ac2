"""MCP tasks, in both protocol eras: a long tool call answered with a task, which is its job.

`creation` decides which call becomes a task and makes it; `handlers` serve the `tasks/*`
methods; `wire` shapes a job as each era shows a task; `client` lets the Python SDK's `Client`
drive 2026-07-28 tasks (public). The names below are the protocol's.
"""

from typing import Final

__all__ = ["EXTENSION", "LEGACY", "MODERN", "RELATED_TASK"]

EXTENSION: Final = "io.modelcontextprotocol/tasks"
MODERN: Final = "2026-07-28"
LEGACY: Final = "2025-11-25"
RELATED_TASK: Final = "io.modelcontextprotocol/related-task"
"""The `_meta` key that ties a 2025 `tasks/result` answer to its task."""
