"""The official MCP conformance suite (`@modelcontextprotocol/conformance`) against the real service.

The service runs as `tests/conformance/serve.py`: the real app plus the fixture tools of the
reference "everything" server, which the scenarios call. Every server scenario of the suite
runs once at the protocol version the suite picks for it, and again at 2026-07-28 when it
applies there, since `/mcp` serves both protocol eras. A scenario passes when none of its
checks is a FAILURE or a WARNING; `tests/conformance/baseline.json` excuses only what the
service does not offer (prompts, resources, sampling, elicitation, ...).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import override

from harness.service import REPO, ServiceProcess
from tests.support import unavailable

CONFORMANCE_DIR = REPO / "tests" / "conformance"
NODE_MODULES = CONFORMANCE_DIR / "node_modules"
NODE = NODE_MODULES / "node" / "bin" / "node"
CLI = NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
BASELINE = CONFORMANCE_DIR / "baseline.json"

MODERN = "2026-07-28"
SCENARIO_TIMEOUT_MS = 15_000  # the suite's own per-scenario limit
RUN_TIMEOUT = 240.0  # one whole pass over the suite, should the server hang on every scenario
INSTALL_TIMEOUT = 480.0
SSE_RETRY_MS = "500"  # server-sse-polling wants a `retry:` hint on the priming event

# Transport and lifecycle scenarios: they must pass in full, and may never be baselined.
MUST_PASS = frozenset(
    {
        "server-initialize",
        "server-session-lifecycle",
        "ping",
        "logging-set-level",
        "tools-list",
        "server-sse-polling",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
        "http-header-validation",
        "http-custom-header-server-validation",
    }
)

FAILING_STATUSES = frozenset({"FAILURE", "WARNING"})
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$")
LISTED_SCENARIO = re.compile(r"^\s+- (?P<name>\S+) \[(?P<tags>[^\]]*)\]$")


@dataclass(frozen=True)
class Failure:
    """One failing check of one scenario in one pass ("default" or a protocol version)."""

    run: str
    scenario: str
    check: str
    status: str
    message: str

    def excused_by(self, baseline: dict[str, str]) -> bool:
        return self.scenario in baseline or f"{self.scenario}:{self.check}" in baseline

    @override
    def __str__(self) -> str:
        return f"[{self.run}] {self.scenario} / {self.check}: {self.status} {self.message}"


def installed_as_pinned() -> bool:
    """Whether node_modules holds exactly the versions package.json pins, with a working Node 22."""
    pins: dict[str, str] = json.loads((CONFORMANCE_DIR / "package.json").read_text())["dependencies"]
    for name, version in pins.items():
        manifest = NODE_MODULES / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text()).get("version") != version:
            return False
    if not NODE.exists():
        return False
    probe = subprocess.run([str(NODE), "--version"], capture_output=True, text=True, timeout=30, check=False)
    return probe.returncode == 0 and probe.stdout.startswith("v22.")


def ensure_conformance_suite() -> str | None:
    """Install Node 22 and the pinned suite on first use (or after a pin changed); return why it cannot run."""
    if installed_as_pinned():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed, so the conformance suite and its Node 22 cannot be installed"
    install = subprocess.run(
        [npm, "install", "--no-package-lock", "--no-audit", "--no-fund"],
        cwd=CONFORMANCE_DIR,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if install.returncode != 0:
        return f"npm install failed in {CONFORMANCE_DIR}: {install.stderr[-2000:]}"
    if not installed_as_pinned():
        return f"npm install in {CONFORMANCE_DIR} did not leave the pinned packages and a working Node 22"
    return None


def conformance(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NODE), str(CLI), *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=CONFORMANCE_DIR
    )


def server_scenarios() -> dict[str, set[str]]:
    """Every server scenario the installed suite has, with its tags (protocol versions, or `extension`)."""
    listing = conformance("list", "--server")
    assert listing.returncode == 0, listing.stderr
    scenarios = {}
    for line in listing.stdout.splitlines():
        if match := LISTED_SCENARIO.match(line):
            scenarios[match["name"]] = set(match["tags"].split(","))
    assert scenarios, f"no server scenarios listed:\n{listing.stdout}"
    return scenarios


def load_baseline() -> dict[str, str]:
    data: dict[str, Any] = json.loads(BASELINE.read_text())
    baseline: dict[str, str] = data["expected_failures"]
    return baseline


def run_pass(url: str, outdir: Path, spec_version: str | None) -> dict[str, list[dict[str, Any]]]:
    """Run the whole suite once; return each scenario's checks as the suite saved them.

    The suite's exit code is ignored (baselined scenarios fail it); the saved checks decide.
    """
    args = ["server", "--url", url, "--suite", "all", "--timeout", str(SCENARIO_TIMEOUT_MS), "-o", str(outdir)]
    if spec_version is not None:
        args += ["--spec-version", spec_version]
    try:
        conformance(*args, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the conformance suite ({spec_version or 'default versions'}) ran past {RUN_TIMEOUT}s")
    results = {}
    for directory in outdir.iterdir() if outdir.exists() else ():
        if (match := RESULT_DIR.match(directory.name)) and (directory / "checks.json").exists():
            results[match["scenario"]] = json.loads((directory / "checks.json").read_text())
    return results


def failures_of(run: str, expected: set[str], results: dict[str, list[dict[str, Any]]]) -> list[Failure]:
    found = []
    for scenario in sorted(expected - results.keys()):
        found.append(Failure(run, scenario, "-", "MISSING", "the suite saved no results for this scenario"))
    for scenario, checks in sorted(results.items()):
        for check in checks:
            if check.get("status") in FAILING_STATUSES:
                message = str(check.get("errorMessage") or check.get("description") or "")
                found.append(Failure(run, scenario, str(check.get("id")), str(check["status"]), message))
    return found


def summary(runs: dict[str, set[str]], failures: list[Failure], baseline: dict[str, str]) -> str:
    lines = []
    for run, expected in runs.items():
        for scenario in sorted(expected):
            mine = [failure for failure in failures if (failure.run, failure.scenario) == (run, scenario)]
            if not mine:
                verdict = "passed" + (" (baselined, could be removed)" if scenario in baseline else "")
            elif all(failure.excused_by(baseline) for failure in mine):
                verdict = "expected failure (baseline)"
            else:
                verdict = "FAILED"
            lines.append(f"{verdict:32} [{run}] {scenario}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def conformance_suite() -> None:
    if (problem := ensure_conformance_suite()) is not None:
        unavailable(problem)


@pytest.mark.timeout(900)
def test_the_service_passes_the_mcp_conformance_suite(conformance_suite: None, tmp_path: Path) -> None:
    scenarios = server_scenarios()
    baseline = load_baseline()
    named = {entry.split(":", 1)[0] for entry in baseline}
    assert not named - scenarios.keys(), f"baseline names unknown scenarios: {sorted(named - scenarios.keys())}"
    assert not named & MUST_PASS, f"transport scenarios may not be baselined: {sorted(named & MUST_PASS)}"
    assert not MUST_PASS - scenarios.keys(), f"the suite no longer has {sorted(MUST_PASS - scenarios.keys())}"

    # Each scenario at the version the suite picks for it; then every one that applies to 2026-07-28 there.
    runs = {"default": set(scenarios), MODERN: {name for name, tags in scenarios.items() if MODERN in tags}}
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    service = ServiceProcess(
        tmp_path, {"PYTHONPATH": pythonpath, "SERVICE_SSE_RETRY_MS": SSE_RETRY_MS}, module="tests.conformance.serve"
    ).start()
    try:
        failures = []
        for run, expected in runs.items():
            results = run_pass(service.mcp_url, tmp_path / run, None if run == "default" else run)
            failures += failures_of(run, expected, results)
    finally:
        service.stop()

    report = summary(runs, failures, baseline)
    unexpected = [failure for failure in failures if not failure.excused_by(baseline)]
    if unexpected:
        details = "\n".join(str(failure) for failure in unexpected)
        where = f"checks.json per scenario under {tmp_path}; service log {service.log_path}"
        pytest.fail(
            f"{len(unexpected)} unexpected conformance failure(s):\n{details}\n({where})\n\n{report}", pytrace=False
        )
    print(report)  # captured: shown only with -s or -rP
