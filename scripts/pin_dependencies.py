"""Pin every dependency, direct and transitive, in pyproject.toml: `uv sync` on a fresh clone then
installs exactly the versions the tests last passed with.

`uv.lock` would do that, but it names the package index's host, so it is not committed. The
pins go to `[tool.uv] constraint-dependencies` instead, which `uv lock` and `uv sync` obey.

    uv run python scripts/pin_dependencies.py            # pin what the current lock resolves to
    uv run python scripts/pin_dependencies.py --upgrade  # drop the pins, resolve the newest, pin those

After an upgrade, run the checks and the tests (`bash .ci/run`) before committing: the MCP seam
(`service/mcp/transport.py`) relies on private parts of the SDK.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
BLOCK = re.compile(r"(?ms)^constraint-dependencies = \[\n.*?^\]\n")


def write_pins(text: str, pins: list[str]) -> str:
    body = "".join(f'    "{pin}",\n' for pin in pins)
    return BLOCK.sub(lambda _: f"constraint-dependencies = [\n{body}]\n", text, count=1)


def resolved() -> list[str]:
    exported = subprocess.run(
        ["uv", "export", "--all-groups", "--no-emit-project", "--no-hashes", "--no-annotate", "--no-header"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = [line.strip() for line in exported.splitlines() if line.strip() and not line.startswith(("#", "-"))]
    return sorted(pins, key=str.lower)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upgrade", action="store_true", help="resolve the newest versions allowed, then pin them")
    upgrade = parser.parse_args().upgrade
    text = PYPROJECT.read_text()
    if not BLOCK.search(text):
        sys.exit(f"{PYPROJECT}: no `constraint-dependencies = [...]` block under [tool.uv]")
    if upgrade:
        PYPROJECT.write_text(write_pins(text, []))
    subprocess.run(["uv", "lock", *(["--upgrade"] if upgrade else [])], check=True)
    pins = resolved()
    pinned = write_pins(PYPROJECT.read_text(), pins)
    tomllib.loads(pinned)  # still valid TOML
    PYPROJECT.write_text(pinned)
    subprocess.run(["uv", "lock"], check=True)  # the lock records its constraints: same versions, new manifest
    if resolved() != pins:
        sys.exit("the lock resolved differently under its own pins: run this again")
    print(f"pinned {len(pins)} packages in {PYPROJECT.name}")


if __name__ == "__main__":
    main()
