"""A 2025-11-25 session driven by hand, as a raw client resumes it: `POST`, then `GET` with `Last-Event-ID`.

What the failover tests and `bench.failover` use to see every message a replica's death leaves a client with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from harness.clients import open_raw_session, tool_call
from harness.service import Endpoint
from harness.sse import parse_sse

__all__ = ["RESUME_ATTEMPTS", "RESUME_EVERY", "RawSession", "until"]

RESUME_EVERY = 0.5
RESUME_ATTEMPTS = 40


def until(lines: Iterator[str], deadline: float) -> Iterator[str]:
    """A stream's lines, up to `deadline`: a stream kept open by pings alone must not hold a run forever."""
    for line in lines:
        if time.monotonic() > deadline:
            raise TimeoutError("the stream outlived the run's deadline")
        yield line


class RawSession:
    """A 2025-11-25 session driven by hand through the balancer: the event to resume from, and what went wrong."""

    def __init__(self, service: Endpoint, lease: float) -> None:
        self.url = service.mcp_url
        self.headers = open_raw_session(service)
        self.timeout = httpx.Timeout(10, read=lease * 4)  # a survivor holds a resumption until it adopts the session
        self.last_event_id = ""
        self.retries: list[int] = []
        """Every `retry:` hint the server sent, in order: the last one says when to resume."""
        self.refused = 0
        self.errors: list[str] = []

    @property
    def replica(self) -> str:
        """Where the session was opened: its id says, before the first `.`."""
        return self.headers["mcp-session-id"].split(".", 1)[0]

    def read(self, response: httpx.Response, on_log: Callable[[Any], None], deadline: float) -> dict[str, Any] | None:
        """The call's response, if it came before the stream ended."""
        for event in parse_sse(until(response.iter_lines(), deadline), self.retries):
            if event.id:
                self.last_event_id = event.id
            if not event.data:
                continue  # a priming event: an id to resume from, nothing else
            message = event.json()
            if message.get("method") == "notifications/message":
                on_log(message["params"]["data"])
            elif "result" in message or "error" in message:
                return dict(message)
        return None

    def call(
        self, request_id: int, arguments: dict[str, Any], on_log: Callable[[Any], None], deadline: float
    ) -> dict[str, Any] | None:
        """The call's response, resuming its stream through the balancer while it breaks; None if none came."""
        body = tool_call(request_id, arguments)
        try:
            with httpx.stream("POST", self.url, headers=self.headers, json=body, timeout=self.timeout) as response:
                if response.status_code != 200:
                    self.errors.append(f"call {request_id}: {response.status_code} {response.read()[:200]!r}")
                    return None
                if (answer := self.read(response, on_log, deadline)) is not None:
                    return answer
        except httpx.HTTPError:
            pass  # the replica died under it
        except TimeoutError as exc:
            self.errors.append(f"call {request_id}: {exc}")
            return None
        for attempt in range(RESUME_ATTEMPTS):
            wait = self.retries[-1] / 1000 if attempt == 0 and self.retries else RESUME_EVERY
            if time.monotonic() + wait > deadline:
                break
            time.sleep(wait)
            headers = {**self.headers, "last-event-id": self.last_event_id}
            try:
                with httpx.stream("GET", self.url, headers=headers, timeout=self.timeout) as response:
                    if response.status_code != 200:
                        self.refused += 1
                        self.errors.append(f"resumption refused: {response.status_code} {response.read()[:200]!r}")
                        continue
                    if (answer := self.read(response, on_log, deadline)) is not None:
                        return answer
            except httpx.HTTPError as exc:
                self.refused += 1
                self.errors.append(f"resumption failed: {exc!r}")
            except TimeoutError as exc:
                self.errors.append(f"call {request_id}: {exc}")
                return None
        self.errors.append(f"call {request_id}: no response after its resumptions")
        return None
