"""A run's figures reduced to medians, ratios and targets, and the text tables of them."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from bench.measure import SESSIONS, Results, stored_after
from bench.servers import (
    BARE,
    EVERY_SERVER,
    EXAMPLE,
    FASTMCP,
    MCP_SERVERS,
    SDK_LIMIT_SERVERS,
    SERVICE_MEMORY,
    SERVICE_SQLITE,
    TS_SDK,
)

# Summaries


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _cpu_per_call(run: dict[str, Any]) -> float:
    return 1e6 * float(run["server_cpu"]) / float(run["calls_per_s"])


def _tools_median(results: Results, name: str, sessions: int, value: Callable[[dict[str, Any]], float]) -> float:
    """The median over rounds of one figure of a server's tool-call runs at a session count."""
    return _median([value(run) for run in results.tools.get(name, {}).get(sessions, [])])


def by_round(runs: Sequence[dict[str, Any]], rounds: int, value: Callable[[dict[str, Any]], float]) -> dict[int, float]:
    """One figure of a server's runs, by the round (from 1) each ran in.

    `bench.measure` records each run's `round`. A run written before it did has its runs in
    round order, one per round: when there are as many as rounds, a run's place is its round;
    otherwise (a round failed, and which one is not known) there are no rounds to pair.
    """
    if runs and all("round" in run for run in runs):
        return {int(run["round"]): value(run) for run in runs}
    if len(runs) == rounds:
        return {index + 1: value(run) for index, run in enumerate(runs)}
    return {}


@dataclass(frozen=True)
class Target:
    ratio: float | None  # service-sqlite / the other server must be >= (higher is better) or <= this
    higher_is_better: bool
    absolute: float | None = None  # or: service-sqlite must be <= this
    note: str = ""

    def describe(self) -> str:
        if self.absolute is not None:
            return f"<= {self.absolute:g}"
        assert self.ratio is not None
        return f"{'>=' if self.higher_is_better else '<='} {self.ratio:.3g}x{self.note}"

    def check(self, ours: float, ratio: float) -> bool | None:
        """Met or not: `ours` is service-sqlite's figure (for an absolute bound), `ratio` its ratio to the other's."""
        if self.absolute is not None:
            return None if ours != ours else ours <= self.absolute
        assert self.ratio is not None
        if ratio != ratio:
            return None
        return ratio >= self.ratio if self.higher_is_better else ratio <= self.ratio


@dataclass
class Row:
    metric: str
    values: dict[str, float]
    target: Target | None = None
    """Against the SDK's example (the targets of #5)."""
    unit: str = ""
    ts_target: Target | None = None
    """Against the TypeScript SDK's server (the targets of #18)."""
    rounds: dict[str, dict[int, float]] = field(default_factory=dict)
    """Each server's figure by round (see `by_round`); empty where there are no rounds to pair (replay)."""

    def ratio(self, name: str, against: str = EXAMPLE) -> float:
        """The ratio of the medians."""
        ours, theirs = self.values.get(name, float("nan")), self.values.get(against, float("nan"))
        return ours / theirs if theirs == theirs and theirs else float("nan")

    def round_ratio(self, name: str, against: str = EXAMPLE) -> float:
        """The median of the per-round ratios: the servers ran in the same rounds, one after the other."""
        ours, theirs = self.rounds.get(name, {}), self.rounds.get(against, {})
        ratios = [
            ours[r] / theirs[r]
            for r in sorted(ours.keys() & theirs.keys())
            if ours[r] == ours[r] and theirs[r] == theirs[r] and theirs[r]
        ]
        return _median(ratios)

    def target_ratio(self, against: str) -> tuple[float, bool]:
        """The ratio a target is judged on, and whether it is the median of the per-round ratios (else: of medians)."""
        per_round = self.round_ratio(SERVICE_SQLITE, against)
        if per_round == per_round:
            return per_round, True
        return self.ratio(SERVICE_SQLITE, against), False

    def target_against(self, against: str) -> Target | None:
        if against == EXAMPLE:
            return self.target
        if against == TS_SDK:
            return self.ts_target
        raise ValueError(f"no targets against {against}")

    def verdict(self, against: str = EXAMPLE) -> str:
        target = self.target_against(against)
        if target is None:
            return ""
        ok = target.check(self.values.get(SERVICE_SQLITE, float("nan")), self.target_ratio(against)[0])
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def summarize(results: Results) -> list[Row]:
    rows: list[Row] = []
    rounds = results.plan.rounds

    def figures(
        measured: Mapping[str, Sequence[dict[str, Any]]], value: Callable[[dict[str, Any]], float]
    ) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
        """Every MCP server's median over rounds of one figure, and the figure by round."""
        runs = {name: measured.get(name, []) for name in MCP_SERVERS}
        return (
            {name: _median([value(run) for run in by_name]) for name, by_name in runs.items()},
            {name: by_round(by_name, rounds, value) for name, by_name in runs.items()},
        )

    def tools_figures(
        sessions: int, value: Callable[[dict[str, Any]], float]
    ) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
        return figures({name: by.get(sessions, []) for name, by in results.tools.items()}, value)

    # #18 asks for these at 10 sessions (and of one long call): ahead of the TypeScript SDK per core.
    ts_calls, ts_p99, ts_notify = Target(1.1, True), Target(0.6, False), Target(1.1, True)
    for sessions in SESSIONS:
        values, by = tools_figures(sessions, itemgetter("calls_per_s"))
        target = ts_calls if sessions == 10 else None
        rows.append(Row(f"tool calls/s, {sessions} sessions", values, Target(1.5, True), "/s", target, by))
    for sessions in SESSIONS:
        values, by = tools_figures(sessions, itemgetter("p50_ms"))
        rows.append(Row(f"p50 latency, {sessions} sessions", values, None, "ms", None, by))
    for sessions in SESSIONS:
        values, by = tools_figures(sessions, itemgetter("p99_ms"))
        target = ts_p99 if sessions == 10 else None
        rows.append(Row(f"p99 latency, {sessions} sessions", values, Target(0.5, False), "ms", target, by))
    # The same comparison in CPU time, which other processes on the machine disturb far less than wall time.
    for sessions in SESSIONS:
        values, by = tools_figures(sessions, _cpu_per_call)
        cpu_target = Target(1 / 1.5, False, note=" (= 1.5x calls/s)")
        rows.append(Row(f"server CPU per tool call, {sessions} sessions", values, cpu_target, "us", None, by))
    values, by = figures(results.notify, itemgetter("notifications_per_s"))
    notify_count = results.plan.notify_count
    rows.append(Row(f"notifications/s (count={notify_count})", values, Target(1.2, True), "/s", ts_notify, by))
    values, by = figures(results.notify, lambda r: 1e6 * r["server_cpu"] / r["notifications_per_s"])
    cpu_target = Target(1 / 1.2, False, note=" (= 1.2x /s)")
    rows.append(Row("server CPU per notification", values, cpu_target, "us", None, by))
    values, by = figures(results.rss, itemgetter("rss_per_session_kb"))
    rss = results.plan.rss_sessions
    rows.append(Row(f"RSS per session ({rss} GET streams)", values, Target(0.7, False), "KB", None, by))
    for index, count in enumerate(stored_after(results.plan.replay_stages)):
        is_last = index == len(results.plan.replay_stages) - 1
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            values = {}
            for name in MCP_SERVERS:
                stages = results.replay.get(name, {}).get("stages", [])
                values[name] = stages[index].get(key, float("nan")) if index < len(stages) else float("nan")
            target = Target(None, False, absolute=2.0) if is_last and label == "p50" else None
            rows.append(Row(f"replay {label}, last 10 of {_count_label(count)} events", values, target, "ms"))
    return rows


def _count_label(count: int) -> str:
    for size, suffix in ((1_000_000, "M"), (1000, "k")):
        if count >= size:
            return f"{count / size:.3g}{suffix}"
    return str(count)


def fmt(value: float) -> str:
    if value != value:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def _fmt_ratio(value: float) -> str:
    """Three decimals: at two, 1.4992x would print as 1.50x next to a FAIL against ">= 1.5x"."""
    return f"{value:.3f}x" if value == value and abs(value) < 10 else fmt(value) + "x"


def _describe(target: Target | None) -> str:
    if target is None:
        return ""
    return target.describe() + (" ms" if target.absolute is not None else "")


def _round_cell(row: Row, against: str) -> str:
    """The median of the per-round ratios; beside a target without rounds to pair, the ratio of the medians that
    it is judged on instead, marked so; nothing beside an absolute bound (judged on service-sqlite's own figure)."""
    target = row.target_against(against)
    if target is not None and target.absolute is not None:
        return ""
    ratio, per_round = row.target_ratio(against)
    if per_round:
        return _fmt_ratio(ratio)
    return _fmt_ratio(ratio) + " (of medians)" if target is not None else ""


def table(rows: Sequence[Row]) -> list[str]:
    header = [
        "metric",
        "unit",
        *MCP_SERVERS,
        "sqlite/example",
        "memory/example",
        f"sqlite/{TS_SDK}",
        f"sqlite/{FASTMCP}",
        "target vs example",
        "sqlite/example per round",
        "met",
        f"target vs {TS_SDK}",
        f"sqlite/{TS_SDK} per round",
        "met",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in rows:
        cells = [
            row.metric,
            row.unit,
            *(fmt(row.values.get(name, float("nan"))) for name in MCP_SERVERS),
            _fmt_ratio(row.ratio(SERVICE_SQLITE)),
            _fmt_ratio(row.ratio(SERVICE_MEMORY)),
            _fmt_ratio(row.ratio(SERVICE_SQLITE, TS_SDK)),
            _fmt_ratio(row.ratio(SERVICE_SQLITE, FASTMCP)),
            _describe(row.target_against(EXAMPLE)),
            _round_cell(row, EXAMPLE),
            row.verdict(EXAMPLE),
            _describe(row.target_against(TS_SDK)),
            _round_cell(row, TS_SDK),
            row.verdict(TS_SDK),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def calibration_lines(results: Results) -> list[str]:
    lines = [
        "| sessions | bare SSE endpoint calls/s | loadgen CPU (bare) | best MCP server calls/s | headroom |"
        " loadgen CPU during MCP runs (max) |",
        "|---|---|---|---|---|---|",
    ]
    for sessions in SESSIONS:
        bare = results.tools.get(BARE, {}).get(sessions, [])
        bare_rate = _median([r["calls_per_s"] for r in bare])
        bare_cpu = _median([r["loadgen_cpu"] for r in bare])
        mcp = [r for name in MCP_SERVERS for r in results.tools.get(name, {}).get(sessions, [])]
        best = max(
            (_tools_median(results, name, sessions, itemgetter("calls_per_s")) for name in MCP_SERVERS),
            default=float("nan"),
        )
        cpu = max((r["loadgen_cpu"] for r in mcp), default=float("nan"))
        headroom = fmt(bare_rate / best) + "x"
        lines.append(f"| {sessions} | {fmt(bare_rate)} | {bare_cpu:.2f} | {fmt(best)} | {headroom} | {cpu:.2f} |")
    return lines


def tool_lines(results: Results) -> list[str]:
    """Every server's tool-call figures at every session count: medians over the rounds."""
    lines = ["| server | sessions | calls/s | p99 ms | CPU per call, us |", "|---|---|---|---|---|"]
    for name, by_sessions in results.tools.items():
        for sessions in sorted(by_sessions):
            rate, p99, cpu = (
                _tools_median(results, name, sessions, value)
                for value in (itemgetter("calls_per_s"), itemgetter("p99_ms"), _cpu_per_call)
            )
            lines.append(f"| {name} | {sessions} | {fmt(rate)} | {fmt(p99)} | {fmt(cpu)} |")
    return lines


def sdk_limit_lines(results: Results) -> list[str]:
    """Tool calls at 1 session: the service and the example against what the SDK leaves room for."""
    lines = [
        "| server | calls/s | p50 ms | p99 ms | CPU per call, us | calls/s vs example (of medians) "
        "| p99 vs example (of medians) |",
        "|---|---|---|---|---|---|---|",
    ]
    values: dict[str, Callable[[dict[str, Any]], float]] = {
        "rate": itemgetter("calls_per_s"),
        "p50": itemgetter("p50_ms"),
        "p99": itemgetter("p99_ms"),
        "cpu": _cpu_per_call,
    }
    medians = {
        name: {key: _tools_median(results, name, 1, value) for key, value in values.items()}
        for name in (EXAMPLE, SERVICE_SQLITE, *SDK_LIMIT_SERVERS)
    }
    example = medians[EXAMPLE]
    for name, m in medians.items():
        lines.append(
            f"| {name} | {fmt(m['rate'])} | {fmt(m['p50'])} | {fmt(m['p99'])} | {fmt(m['cpu'])} | "
            f"{_fmt_ratio(m['rate'] / example['rate'])} | {_fmt_ratio(m['p99'] / example['p99'])} |"
        )
    return lines


def noise_lines(results: Results) -> list[str]:
    other = [
        r["other_cpu"]
        for per_server in results.tools.values()
        for per_sessions in per_server.values()
        for r in per_sessions
        if "other_cpu" in r
    ]
    server = {
        name: _median([r["server_cpu"] for per in results.tools.get(name, {}).values() for r in per])
        for name in EVERY_SERVER
    }
    lines = [
        f"- CPU used by other processes on the machine during the tool-call runs: median {_median(other):.2f} cores, "
        f"max {max(other, default=float('nan')):.2f} (measured as all busy CPU minus server and load generator).",
        "- Server CPU during the tool-call runs (cores, median over runs): "
        + ", ".join(f"{name} {value:.2f}" for name, value in server.items())
        + ".",
    ]
    if results.plan.attempts > 1:
        lines.append(
            f"- Tool-call runs repeated because other processes used more than {results.plan.noise_limit:g} cores "
            f"meanwhile: {results.retries} (up to {results.plan.attempts} attempts each, the quietest kept)."
        )
    if results.failures:
        lines.append(f"- Failed measurements (left out of the medians): {'; '.join(results.failures)}.")
    return lines


def smoke_problems(results: Results) -> list[str]:
    """What makes a smoke run fail: a measurement that did not complete, or calls answered with errors."""
    errors = [
        f"{name} tools x{sessions}: {result['errors']} errors"
        for name, by_sessions in results.tools.items()
        for sessions, runs in by_sessions.items()
        for result in runs
        if result["errors"]
    ]
    return [*results.failures, *errors]
