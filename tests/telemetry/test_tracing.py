"""Traces exported over OTLP/HTTP to a real receiver (an HTTP server decoding the protobuf the exporter sends)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from typing_extensions import override

from harness.clients import mcp_client
from service.telemetry.tracing import tracer_provider
from service.tools.notification_stream import TOOL_NAME
from tests.conftest import ServiceFactory
from tests.support import wait_for


@dataclass
class Receiver:
    """What an OTLP/HTTP collector was sent: every span, with its resource's attributes."""

    url: str
    spans: list[Span] = field(default_factory=list)
    resources: list[dict[str, str]] = field(default_factory=list)

    def named(self, name: str) -> list[Span]:
        return [span for span in self.spans if span.name == name]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        found.spans.extend(scope_spans.spans)
                        found.resources.extend(attributes for _ in scope_spans.spans)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        @override
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def test_no_endpoint_no_provider() -> None:
    assert tracer_provider(replica="r", version="0", environ={}) is None
    assert tracer_provider(replica="r", version="0", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})


def test_http_mcp_job_and_store_spans_reach_the_receiver(
    start_service: ServiceFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "traced-service")
    with start_service(REPLICA_ID="traced") as service:

        async def call() -> None:
            async with mcp_client(service.mcp_url) as client:
                await client.call_tool(TOOL_NAME, {"interval": 0, "count": 2, "caller": "traced"})

        anyio.run(call)
        job = httpx.post(f"{service.base_url}/jobs", json={"interval": 0, "count": 1, "caller": "rest"}).json()
        httpx.get(f"{service.base_url}/jobs/{job['id']}/events")
        wait_for(lambda: len(receiver.named("job")) >= 2, timeout=10)

    tool_call = receiver.named(f"tools/call {TOOL_NAME}")
    assert len(tool_call) == 1
    # The MCP job ran inside its tool call: one trace, the job a descendant of the call's span.
    (mcp_job,) = [span for span in receiver.named("job") if span.trace_id == tool_call[0].trace_id]
    by_id = {span.span_id: span for span in receiver.spans}
    ancestor, seen = mcp_job.parent_span_id, []
    while ancestor in by_id:
        seen.append(by_id[ancestor].name)
        ancestor = by_id[ancestor].parent_span_id
    assert f"tools/call {TOOL_NAME}" in seen
    assert any(name.startswith("POST /mcp") for name in seen)  # FastAPI's request span
    assert {a.key: a.value.int_value for a in mcp_job.attributes if a.key == "job.sent"} == {"job.sent": 2}
    assert receiver.named("POST /jobs")
    assert receiver.named("GET /jobs/{job_id}/events")
    assert receiver.named("store get_job")
    assert not receiver.named("store append")  # queued writes: no span each
    assert {r["service.name"] for r in receiver.resources} == {"traced-service"}
    assert {r["service.instance.id"] for r in receiver.resources} == {"traced"}
