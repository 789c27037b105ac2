"""Traces over OTLP/HTTP, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set; else nothing.

The spans: FastAPI's own (one per HTTP request, by route; not its per-dependency ones), the
MCP SDK's (one per MCP request: `tools/call start-notification-stream`...), and the service's
(a job's run, and each store call that waits for the backend: `store get_job`, `store read`...).
Without an endpoint no provider is made and the service's code paths check a `None` tracer:
no span objects, no cost.

The SDK reaches its tracer through OpenTelemetry's global provider, so a configured
provider is made global when the app starts (once per process, as OpenTelemetry allows).

OpenTelemetry's SDK and exporter (the `otel` extra) are imported only when an endpoint is
configured: a service without tracing never loads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["ENDPOINT_VARIABLES", "install_globally", "tracer_provider"]

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SERVICE_NAME = "mcp-notification-service"


def tracer_provider(*, replica: str, version: str, environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A provider exporting over OTLP/HTTP (the exporter reads the standard `OTEL_*` variables), or None."""
    environ = os.environ if environ is None else environ
    if not any(environ.get(name) for name in ENDPOINT_VARIABLES):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, and tracing needs OpenTelemetry's SDK: "
            "install mcp-notification-service[otel]"
        ) from exc
    resource = Resource.create(
        {
            "service.name": environ.get("OTEL_SERVICE_NAME", SERVICE_NAME),
            "service.version": version,
            "service.instance.id": replica,
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def install_globally(provider: TracerProvider) -> None:
    """Make `provider` the process's (for the SDK's spans); a second app in the process keeps the first's."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        trace.set_tracer_provider(provider)
