"""The import graph of `service/`, by layer, and every import that reaches back up a layer.

Data flows one way (README, "Layout"): settings and framing at the bottom, then what a job
is (domain), where events are stored (stores), the resumable MCP core (mcp), the engine
(jobs), the HTTP guards, the MCP server's tools, REST and the dashboard, the service that
wires them, and at the top the public names and the command. A module may import its own
layer and the ones below; an import of a higher layer is a violation, and this exits 1
naming it (`tests/test_architecture.py` runs it).

    uv run python scripts/import_graph.py          # the graph, then the violations (none, one hopes)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "service"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("service.version", "service.settings", "service.sse", "service.telemetry"),
    ("service.domain",),
    ("service.stores",),
    ("service.mcp",),
    ("service.jobs",),
    ("service.auth", "service.errors", "service.middleware", "service.routing"),
    ("service.tools", "service.tasks"),
    ("service.api", "service.dashboard"),
    ("service.lifecycle", "service.notification_service", "service.app"),
    ("service", "service.cli", "service.__main__", "service.cluster"),
)


def layer_of(module: str) -> int:
    """The layer of the longest prefix of `module` that is named in `LAYERS`."""
    best, best_length = -1, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_length:
                best, best_length = index, len(name)
    if best < 0:
        raise SystemExit(f"{module} is in no layer: add it to LAYERS")
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The `service` modules a file imports (at any depth of the file: a lazy import counts too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "service" or node.module.startswith("service."):
                # `from service import sse` imports the module service.sse, not the package.
                found.update(
                    f"{node.module}.{alias.name}" if _is_module(f"{node.module}.{alias.name}") else node.module
                    for alias in node.names
                )
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "service")
    return found


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in sorted(ROOT.rglob("*.py"))}


def violations(edges: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in sorted(edges.items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]


def main() -> int:
    edges = graph()
    for index, names in enumerate(LAYERS):
        print(f"layer {index}: {', '.join(names)}")
        for module in sorted(m for m in edges if layer_of(m) == index):
            targets = sorted(edges[module], key=lambda target: (layer_of(target), target))
            print(f"  {module:28s} -> {', '.join(targets) if targets else '(nothing of the service)'}")
    found = violations(edges)
    print(f"\n{len(found)} import(s) reaching back up" + (":" if found else ""))
    for line in found:
        print(f"  {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
