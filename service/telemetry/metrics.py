"""The service's Prometheus metrics, on a registry of the app's own (no process-wide state).

Labels are bounded: routes are templates (`/jobs/{job_id}`), MCP methods outside the
protocol's own set count as `other`, and no label carries an id.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "MCP_METHODS", "Metrics", "era_of"]

NAMESPACE = "mns"

MCP_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "server/discover",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def era_of(protocol_version: str | None) -> str:
    """The protocol era of a request: `2025-11-25` (sessions, handshake) or `2026-07-28` (one POST per request)."""
    return "2026-07-28" if protocol_version is not None and protocol_version >= "2026-07-28" else "2025-11-25"


class Metrics:
    """Every instrument the service updates; `exposition` is what `/metrics` answers."""

    def __init__(self, *, backend: str) -> None:
        self.backend = backend
        self.registry = CollectorRegistry(auto_describe=False)
        counter, gauge, histogram = self._counter, self._gauge, self._histogram
        self.http_requests = counter("http_requests", "HTTP requests answered.", "method", "route", "status")
        self.http_duration = histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, to the end of its body (a stream's whole life).",
            DURATION_BUCKETS,
            "method",
            "route",
        )
        self.mcp_requests = counter("mcp_requests", "MCP requests and notifications received.", "method", "era")
        self.mcp_sessions = gauge("mcp_sessions_open", "Live MCP sessions held here.")
        self.sse_streams = gauge("sse_streams_open", "Open SSE responses (MCP streams and /jobs/{id}/events).")
        self.jobs_started = counter("jobs_started", "Jobs started here.", "origin")
        self.jobs_ended = counter("jobs_ended", "Jobs run here that ended.", "origin", "status")
        self.jobs_running = gauge("jobs_running", "Jobs running here.")
        self.notifications = counter("notifications_sent", "Notifications sent by the jobs run here.", "origin")
        self.store_duration = histogram(
            "store_operation_duration_seconds",
            "Time of a store call that waits for the backend (reads, deletes, the purge; queued writes are not timed).",
            STORE_BUCKETS,
            "backend",
            "operation",
        )
        self.store_errors = counter("store_errors", "Store operations that failed.", "backend", "operation")
        self.replays = counter("replays", "Resumed streams served from the store (Last-Event-ID).", "kind")
        self.replayed_events = counter("replayed_events", "Stored events sent again to resuming clients.", "kind")
        self.leases_taken = counter("leases_taken", "Job leases this replica took (SERVICE_STORE=redis).")
        self.leases_expired = counter("leases_expired", "Jobs found with an expired lease: recorded interrupted.")

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, namespace=NAMESPACE, registry=self.registry)

    def _gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, namespace=NAMESPACE, registry=self.registry)

    def _histogram(self, name: str, documentation: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, namespace=NAMESPACE, registry=self.registry)

    def replayed(self, kind: str, events: int) -> None:
        """A resumed stream served (`kind`: `mcp` or `rest`), with the stored events it sent again."""
        self.replays.labels(kind).inc()
        if events:
            self.replayed_events.labels(kind).inc(events)

    def watch(self, *, sessions: Callable[[], float], running_jobs: Callable[[], float]) -> None:
        """Gauges read when scraped, from what holds the numbers."""
        self.mcp_sessions.set_function(sessions)
        self.jobs_running.set_function(running_jobs)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
