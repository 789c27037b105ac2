"""A run written out: `benchmarks.md` (keeping the sections other benches write in it), its chart,
and the JSON of its figures."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import psutil

from bench.measure import SESSIONS, Plan, Results, stored_after
from bench.servers import (
    EXAMPLE,
    FASTMCP,
    LOADGEN_CORE,
    MCP_SERVERS,
    REPLAY_SERVERS,
    ROOT,
    SDK_FLOOR,
    SERVER_CORE,
    SERVICE_INLINE,
    SERVICE_MEMORY,
    SERVICE_SQLITE,
    TS_SDK,
    log,
)
from bench.summary import Row, calibration_lines, fmt, noise_lines, sdk_limit_lines, summarize, table

PACKAGES = (
    "mcp",
    "mcp-types",
    "fastapi",
    "starlette",
    "sse-starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "anyio",
    "pydantic",
    "pydantic-core",
)


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "service"], cwd=ROOT, capture_output=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = len(dirty.stdout.decode().splitlines())
    state = f"with {changed} uncommitted change(s) under service/" if changed else "clean under service/"
    return f"commit {head.stdout.decode().strip()}, {state}"


def machine_info() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
    }


# The section `bench.soak --plot ... --markdown` writes into the report; a new report keeps it.
SOAK_SECTION = ("<!-- bench.soak -->", "<!-- /bench.soak -->")


def with_section(text: str, section: str, markers: tuple[str, str] = SOAK_SECTION) -> str:
    """`text` with the section between `markers` replaced by `section` (or added at the end)."""
    begin, end = markers
    block = f"{begin}\n{section.strip()}\n{end}\n"
    if begin in text and end in text:
        return text[: text.index(begin)] + block + text[text.index(end) + len(end) :].lstrip("\n")
    return text.rstrip("\n") + "\n\n" + block


def kept_section(path: Path, markers: tuple[str, str] = SOAK_SECTION) -> str | None:
    """The section between `markers` in the report at `path`, if there is one."""
    text = path.read_text() if path.exists() else ""
    begin, end = markers
    if begin not in text or end not in text:
        return None
    return text[text.index(begin) + len(begin) : text.index(end)]


def collector_lines(rows: Sequence[Row]) -> list[str]:
    """What the service's tuned garbage collector does to the figures, beside them."""
    by_metric = {row.metric: row for row in rows}
    p50, p99 = (by_metric[f"{label} latency, 10 sessions"].values for label in ("p50", "p99"))
    example = f"{fmt(p99.get(EXAMPLE, float('nan')))} ms against a p50 of {fmt(p50.get(EXAMPLE, float('nan')))}"
    service = f"{fmt(p99.get(SERVICE_SQLITE, float('nan')))} against {fmt(p50.get(SERVICE_SQLITE, float('nan')))}"
    return [
        "**The garbage collector is part of the product measured.** The service tunes Python's cyclic collector as "
        "it starts (`service/cli.py`): `gc.freeze()` takes everything built at start-up out of the collector's "
        "passes, and `gc.set_threshold(10_000, 10, 10)` makes its young passes (and the full passes they lead to) "
        "about 14 times rarer than the default of 700. That moves the calls/s, CPU per call and above all the p99 "
        "rows. The example, fastmcp and the bare endpoint run at Python's defaults, as the SDK's example does "
        f"(sdk-floor, below, is tuned as the service is). The p99 against the example is largely that example's "
        f"collector pauses: at 10 sessions its p99 is {example} (the service: {service}); its collector rescans "
        "every message object its event store keeps, in full passes of tens of milliseconds "
        "([performance.md](performance.md): what the two settings bought the service, and the example's passes "
        "timed call by call). Read the p99 ratios against the example as the two collectors' settings as much as "
        "the two servers' code; the TypeScript server's collector is V8's.",
    ]


def notify_method(results: Results) -> str:
    """How the notification calls of this run were spaced (runs before the wait did not wait)."""
    runs = [run for by_server in results.notify.values() for run in by_server]
    if runs and all("drains" in run for run in runs):
        return (
            "each started once the server had been idle for 0.2 s (under 5% of a core), and charged what it left "
            "to do after its response (the SQLite store writes its rows behind): its rate is its notifications over "
            "its latency plus the server CPU spent after it until idle, and its CPU counts both. Every call is "
            "measured alike, and none is credited with work that lands after its window."
        )
    return (
        "back to back (this run is from before the calls waited for an idle server between them: the first "
        "call of a round left the SQLite store's writes of its rows to the second's window, and measured up to "
        "twice the others' rate)."
    )


def write_markdown(results: Results, rows: Sequence[Row], path: Path, plot: Path | None) -> None:
    plan = results.plan
    info = results.machine
    native = ", ".join(f"{name}: {'+'.join(mods) or 'neither'}" for name, mods in sorted(results.native.items()))
    text = [
        "# Benchmarks: this service against the SDK's example, the TypeScript SDK and fastmcp",
        "",
        f"Generated by `uv run python -m bench.run` on {results.generated}"
        + f". Medians over {plan.rounds} rounds (replay: one fill per server).",
        *(f"Amended: {amendment}." for amendment in results.amended),
        "",
        "- **service-sqlite**: `python -m service` with `SERVICE_STORE=sqlite` (the default, durable store).",
        "- **service-memory**: the same with `SERVICE_STORE=memory`.",
        "- **example**: `bench/example_server.py`, a re-implementation of the SDK's `simple-streamablehttp` example "
        "(low-level `Server`, `StreamableHTTPSessionManager`, the example's in-memory event store: 100 events per "
        "stream id, message objects, replay by scanning). Unlike the SDK's example, its tool does not end each "
        "call with a `notifications/resources/updated` (about 330 us of server CPU per call here, work the service "
        "does not do); `bench/example_server.py --resource-updated` puts it back.",
        f"- **{TS_SDK}**: `tests/node/server.mjs` under Node, the TypeScript SDK's server "
        f"(`@modelcontextprotocol/sdk`) on the design of its `simpleStreamableHttp` example: one transport "
        "and `McpServer` per session, the example's `InMemoryEventStore` (every event kept), notifications on "
        "the request's own stream. Its replay rows use an ordered store of the same kind instead "
        "(`--event-store ordered`): the example's sorts event ids as strings, and replays a burst of events "
        "stored in one millisecond out of order (typescript-sdk#943); and its history is filled to 100k events "
        "only (to 1M, the fill did not end in 15 minutes).",
        f"- **{FASTMCP}**: `bench/fastmcp_server.py`, a `FastMCP` server with the same tool (`Context.info` per "
        "notification) and fastmcp's in-memory `EventStore`, under uvicorn like the example. Its history is not "
        "filled for the replay rows: at its rate, 1M events would take over six minutes.",
        "",
        *table(rows),
        "",
        "Ratios are service-sqlite (or service-memory) over the other server. The columns `sqlite/example`, "
        "`memory/example`, `sqlite/ts-sdk` and `sqlite/fastmcp` are ratios of the medians. The servers ran in the "
        "same rounds, one after the other, so each round gives a ratio of its own: the `per round` columns are the "
        "median of those, and every target is judged on that one, which the round-to-round drift of the machine "
        "disturbs less (where a run did not record its rounds, on the ratio of the medians, marked so). The targets "
        f"compare service-sqlite with the example (#5; replay: an absolute bound) and with {TS_SDK} (#18). "
        "Higher is better for rates, lower for latency, CPU and memory.",
        "",
        *collector_lines(rows),
        "",
        "Each target, what limits the ones not met, and where the time goes: "
        "[performance.md](performance.md) (`uv run python -m bench.profile_server`).",
        "",
    ]
    if plot is not None:
        text += [f"![throughput and latency]({plot.name})", ""]
    text += [
        "## Where the SDK sets the limit: tool calls at 1 session",
        "",
        f"Measured in the same rounds. **{SERVICE_INLINE}** is the service with each request handled in its "
        "own POST's task (`bench/inline_dispatch.py`, through the SDK dispatcher's private members): what an SDK "
        "entry point for that would buy; the SDK's dispatcher instead reads each request in a task of its own "
        f"and spawns another to handle it. **{SDK_FLOOR}** is the least work the SDK's session manager and "
        "low-level server do for a call (`bench/example_server.py --floor`: JSON answers, so the call's "
        "notification is dropped; no event store; the collector tuned as the service tunes it): a reference "
        "for servers built on them, doing less than the benchmark's calls require.",
        "",
        *sdk_limit_lines(results),
        "",
        "## Other benchmarks",
        "",
        "- [`scaling.md`](scaling.md) (`bench.scaling`): `SERVICE_STORE=redis` against SQLite and this example, "
        "Redis round trips and CPU per call, replicas behind Caddy, "
        "and how far one Redis and a Redis Cluster carry it.",
        "- [`operations.md`](operations.md) (`bench.operations`): metrics and JSON logs on against off, and traced "
        "over OTLP.",
        "",
        "## Load generator ceiling",
        "",
        "The same load generator against a bare Starlette endpoint (`bench/bare_server.py`) that answers each POST "
        "with a three-event SSE response, under the same uvicorn settings and pinning:",
        "",
        *calibration_lines(results),
        "",
        "## Noise",
        "",
        *noise_lines(results),
        "",
        "## Settings",
        "",
        f"- Servers pinned to core {SERVER_CORE}, load generator to core {LOADGEN_CORE} (`os.sched_setaffinity`); "
        "fresh server processes for every round, in rotated order; each measurement first waits (up to "
        f"{plan.quiet_wait:g} s) for other processes to use less than a quarter of a core.",
        f"- Tool calls: `count=1, interval=0`, closed loop per session, {plan.warmup:g} s warm-up then "
        f"{plan.duration:g} s measured ({2 * plan.duration:g} s at 100 sessions); latency = POST sent to end of "
        "its SSE response; one keep-alive connection per session; protocol 2025-11-25 with `Mcp-Session-Id`.",
        f"- Notifications: one call with `count={plan.notify_count}`, `interval=0`, median of {plan.notify_reps} "
        "calls per round, " + notify_method(results),
        f"- RSS: server RSS before and after opening {plan.rss_sessions} sessions that each hold a GET stream "
        "(10 warm-up sessions first; fresh server process).",
        f"- Replay: one session calls the tool with counts {', '.join(map(str, plan.replay_stages))} in turn; after "
        f"each, {plan.replays} GETs with `Last-Event-ID` set to the 11th-last event id of that call's stream, timed "
        "until the 10th replayed event arrives (each on a new connection, opened before the clock starts). For the "
        "service: `SERVICE_MAX_COUNT=1000000`, `SERVICE_MAX_EVENTS_PER_SESSION=2000000`. The example keeps 100 events "
        "per stream, so it replays from what it kept.",
        "- Service environment: the defaults (metrics on, logs at `INFO` with no access log: one line per job; "
        "SQLite in a fresh temporary directory on the same disk). The service's `uvicorn.Server` "
        "(`service/cli.py`) uses uvicorn's `auto` loop and HTTP implementation; native modules seen loaded in "
        "each server's memory map: " + native + ".",
        "- The example, fastmcp and the bare server run uvicorn with `loop=uvloop`, `http=httptools`, access log off "
        "and logs at `WARNING`; the TypeScript SDK's server logs nothing per request.",
        "",
        "## Machine and code",
        "",
        f"- code measured: service/ as of the start of the run ({results.code}); the servers import that copy",
        *(f"- {key}: {value}" for key, value in info.items()),
        "",
    ]
    report = "\n".join(text)
    if (soak := kept_section(path)) is not None:
        report = with_section(report, soak)
    path.write_text(report)


def write_plot(results: Results, rows: Sequence[Row], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot")
        return False
    colors = {
        SERVICE_SQLITE: "tab:blue",
        SERVICE_MEMORY: "tab:green",
        EXAMPLE: "tab:orange",
        TS_SDK: "tab:purple",
        FASTMCP: "tab:gray",
    }
    by_metric = {row.metric: row for row in rows}
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    width = 0.8 / len(MCP_SERVERS)
    x = list(range(len(SESSIONS)))

    def grouped_bars(ax: Any, metric: str, ylabel: str, title: str) -> None:
        for offset, name in enumerate(MCP_SERVERS):
            values = [by_metric[metric.format(s=s)].values[name] for s in SESSIONS]
            shift = (offset - (len(MCP_SERVERS) - 1) / 2) * width
            ax.bar([i + shift for i in x], values, width, label=name, color=colors[name])
        ax.set_xticks(x, [str(s) for s in SESSIONS])
        ax.set_xlabel("concurrent sessions")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)

    grouped_bars(axes[0][0], "tool calls/s, {s} sessions", "tool calls/s", "Throughput (count=1, interval=0)")
    grouped_bars(
        axes[0][2], "server CPU per tool call, {s} sessions", "server CPU per call (us)", "Server CPU per tool call"
    )

    ax = axes[0][1]
    for name in MCP_SERVERS:
        p50 = [by_metric[f"p50 latency, {s} sessions"].values[name] for s in SESSIONS]
        p99 = [by_metric[f"p99 latency, {s} sessions"].values[name] for s in SESSIONS]
        ax.plot(SESSIONS, p50, "o-", color=colors[name], label=f"{name} p50")
        ax.plot(SESSIONS, p99, "s--", color=colors[name], label=f"{name} p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent sessions")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Tool-call latency")
    ax.legend(fontsize=8)

    def server_bars(ax: Any, row: Row, ylabel: str, title: str) -> None:
        ax.bar(range(len(MCP_SERVERS)), [row.values[n] for n in MCP_SERVERS], color=[colors[n] for n in MCP_SERVERS])
        ax.set_xticks(range(len(MCP_SERVERS)), list(MCP_SERVERS), fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)

    notify = next(row for row in rows if row.metric.startswith("notifications/s"))
    rss = next(row for row in rows if row.metric.startswith("RSS per session"))
    server_bars(axes[1][0], notify, "notifications/s", f"One call, count={results.plan.notify_count}")
    server_bars(axes[1][1], rss, "KB per session", f"Server RSS per session ({results.plan.rss_sessions} GET streams)")

    ax = axes[1][2]
    stored = stored_after(results.plan.replay_stages)
    for name in REPLAY_SERVERS:
        stages = results.replay.get(name, {}).get("stages", [])
        values = [stage.get("p50_ms", float("nan")) for stage in stages]
        ax.plot(stored[: len(values)], values, "o-", color=colors[name], label=name)
    ax.axhline(2.0, color="grey", linestyle=":", label="target (2 ms)")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("events stored in the session")
    ax.set_ylabel("replay p50 (ms), last 10 events")
    ax.set_title("Resumption latency")
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def dump(results: Results, path: Path) -> None:
    data = {item.name: getattr(results, item.name) for item in fields(Results)}
    data["plan"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(results.plan).items()}
    path.write_text(json.dumps(data, indent=1))


def load(path: Path) -> Results:
    """A run written by `dump`, to render again (`--render`)."""
    data = json.loads(path.read_text())
    stored = data.pop("plan")
    plan = Plan(**{**stored, "out_dir": Path(stored["out_dir"]), "replay_stages": tuple(stored["replay_stages"])})
    # JSON keys are strings: the session counts were ints.
    data["tools"] = {name: {int(sessions): runs for sessions, runs in by.items()} for name, by in data["tools"].items()}
    data.setdefault("generated", "an unrecorded date")
    return Results(plan, **{item.name: data[item.name] for item in fields(Results) if item.name in data})


def report(results: Results, out_dir: Path) -> None:
    """Write benchmarks.{md,png,json} to `out_dir` and print the tables."""
    rows = summarize(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "benchmarks.png"
    has_plot = write_plot(results, rows, plot)
    write_markdown(results, rows, out_dir / "benchmarks.md", plot if has_plot else None)
    dump(results, out_dir / "benchmarks.json")
    print("\n".join(table(rows)))
    print()
    print("\n".join(calibration_lines(results)))
    print()
    print("\n".join(noise_lines(results)))
