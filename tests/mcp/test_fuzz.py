"""`/mcp` fuzzed with hypothesis in both protocol eras: generated JSON-RPC messages, ids,
headers, cursors and raw bodies. Whatever comes in, nothing answers 5xx, every error is
JSON with a code and a message, a request is never taken for a notification, and the
service goes on serving with nothing left running."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from harness.clients import MCP_HEADERS, open_raw_session
from harness.service import ServiceProcess
from harness.sse import parse_sse
from service.tools.notification_stream import TOOL_NAME
from tests.fuzzing import NUMBERS, STRINGS, UVICORN_REFUSAL, VALUES, fuzz, fuzzed_service
from tests.support import wait_for

LEGACY, MODERN = "2025-11-25", "2026-07-28"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with fuzzed_service(tmp_path_factory.mktemp("mcp-fuzz")) as running:
        yield running


IDS = st.one_of(st.integers(min_value=-(2**64), max_value=2**64), st.text(max_size=8), VALUES)
ARGUMENTS = st.one_of(
    st.fixed_dictionaries(
        {"interval": NUMBERS | VALUES, "count": st.integers(-2, 5) | VALUES, "caller": STRINGS | VALUES}
    ),
    VALUES,
)
METHODS = st.sampled_from(
    ["tools/call", "tools/list", "ping", "initialize", "logging/setLevel", "notifications/cancelled", "resources/list"]
) | st.text(max_size=12)
PARAMS = st.one_of(
    st.fixed_dictionaries({"name": st.just(TOOL_NAME) | STRINGS, "arguments": ARGUMENTS}),
    st.fixed_dictionaries(
        {"protocolVersion": st.sampled_from([LEGACY, MODERN]) | STRINGS, "capabilities": VALUES, "clientInfo": VALUES}
    ),
    st.fixed_dictionaries({"requestId": IDS, "level": STRINGS}),
    VALUES,
)


VALID_CALL = {"name": TOOL_NAME, "arguments": {"interval": 0.01, "count": 2, "caller": "fuzz"}}
TEMPLATES = [
    ("tools/call", VALID_CALL),
    ("tools/call", VALID_CALL),
    ("tools/list", {}),
    ("ping", None),
    ("logging/setLevel", {"level": "info"}),
    ("initialize", {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}),
    ("notifications/cancelled", {"requestId": 1}),
]


# What every 2026-07-28 request carries in its params.
MODERN_META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


@st.composite
def messages(draw: st.DrawFn, era: str) -> Any:
    """A well-formed message, then up to three mutations: a member dropped, replaced or added, at any depth."""
    method, params = draw(st.sampled_from(TEMPLATES))
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if not method.startswith("notifications/"):
        message["id"] = draw(st.integers(0, 2**31))
    if params is not None or era == MODERN:
        message["params"] = json.loads(json.dumps(params or {}))
        if era == MODERN:
            message["params"]["_meta"] = dict(MODERN_META)
    for _ in range(draw(st.integers(0, 3))):
        target = message
        if "params" in message and isinstance(message["params"], dict) and draw(st.booleans()):
            target = message["params"]
            if isinstance(target.get("arguments"), dict) and draw(st.booleans()):
                target = target["arguments"]
        keys = sorted(target)
        mutation = draw(st.sampled_from(["drop", "replace", "replace", "add"] if keys else ["add"]))
        if mutation == "drop":
            del target[draw(st.sampled_from(keys))]
        elif mutation == "replace":
            key = draw(st.sampled_from(keys))
            target[key] = draw(IDS if key == "id" else PARAMS if key == "params" else VALUES)
        else:
            target[draw(STRINGS)] = draw(VALUES)
    return message if draw(st.integers(0, 19)) else draw(st.lists(st.just(message), max_size=2))


def header_value(value: str) -> bytes:
    """A header value as an HTTP client lets one through: any bytes but controls, unpadded.

    (uvicorn's parser answers control characters itself, in plain text: the README says so.)
    """
    return value.encode("utf-8", "surrogatepass").translate(None, CONTROLS).strip(b" \t")


CONTROLS = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])


HEADER_VALUES: dict[str, st.SearchStrategy[str]] = {
    "accept": st.sampled_from(["application/json", "text/event-stream", "*/*", "text/html"]) | STRINGS,
    "content-type": st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1"]),
    "mcp-protocol-version": st.sampled_from([LEGACY, MODERN, "2024-11-05", "1999-01-01"]) | STRINGS,
    "mcp-session-id": STRINGS,
    "last-event-id": STRINGS | st.integers(-5, 10**20).map(str),
    "mcp-method": METHODS,
    "mcp-name": STRINGS,
}
# Half the requests keep the era's headers as they are; the others change one or two.
HEADERS: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.lists(st.sampled_from(sorted(HEADER_VALUES)), min_size=1, max_size=2, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({name: HEADER_VALUES[name] for name in names})
    ),
)


@st.composite
def requests(draw: st.DrawFn, era: str) -> tuple[str, dict[str, str], bytes, Any]:
    """An HTTP request to /mcp: method, header overrides, body bytes, and the message it encodes (if any)."""
    method = draw(st.sampled_from(["POST"] * 8 + ["GET", "DELETE"]))
    message = draw(messages(era))
    if draw(st.integers(0, 9)):
        body = json.dumps(message, allow_nan=True).encode()  # NaN, Infinity and \ud800 as written
    else:
        message, body = None, draw(st.binary(max_size=40))
    headers = {name: value for name, value in draw(HEADERS).items() if value is not None}
    return method, headers, body, message


def check(response: httpx.Response, message: Any) -> None:
    """What every answer must be: no 5xx, errors as JSON with a code and a message, requests answered."""
    assert response.status_code < 500, response.text
    if response.text == UVICORN_REFUSAL:  # a header uvicorn's parser refuses before the app sees it
        assert response.status_code == 400
        return
    content_type = response.headers.get("content-type", "")
    if response.status_code >= 400:
        assert content_type.startswith("application/json"), (response.status_code, response.text)
        body = response.json()
        error = body.get("error")
        if error is not None:
            assert isinstance(error["code"], int)
            assert error["message"]
        else:
            assert body["detail"]
    elif response.status_code == 202:
        assert response.content == b""
        is_request = isinstance(message, dict) and "method" in message and "id" in message
        assert not is_request, f"a request was taken for a notification: {message!r}"
    elif content_type.startswith("text/event-stream"):
        for sse in parse_sse(iter(response.text.splitlines())):
            if not sse.data:
                continue  # a priming event: an id to resume from, nothing else
            reply = sse.json()
            if "error" in reply:
                assert isinstance(reply["error"]["code"], int)
                assert reply["error"]["message"]
    elif response.content:
        reply = response.json()
        assert isinstance(reply, dict), reply


def send(service: ServiceProcess, method: str, headers: dict[bytes, bytes], body: bytes) -> httpx.Response:
    """One request; a GET that opens a live stream is read only as far as its headers."""
    with httpx.Client(timeout=httpx.Timeout(10)) as http:
        request = http.build_request(
            method, service.mcp_url, headers=headers, content=body if method == "POST" else b""
        )
        response = http.send(request, stream=True)
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream") and method == "GET":
                return httpx.Response(response.status_code, headers=response.headers)
            response.read()
            return response
        finally:
            response.close()


def era_headers(service: ServiceProcess, era: str, message: Any) -> dict[str, str]:
    """What a client of that era sends: a live session of its own (a fuzzed DELETE may end it), or
    the 2026 headers that mirror the body."""
    if era == LEGACY:
        return open_raw_session(service)
    headers = {**MCP_HEADERS, "mcp-protocol-version": MODERN}
    if isinstance(message, dict) and isinstance(message.get("method"), str):
        headers["mcp-method"] = message["method"]
        params = message.get("params")
        if isinstance(params, dict) and isinstance(params.get("name"), str):
            headers["mcp-name"] = params["name"]
    return headers


@pytest.mark.parametrize("era", [LEGACY, MODERN])
@fuzz(200)
@given(data=st.data())
def test_generated_requests_get_clear_answers(service: ServiceProcess, era: str, data: st.DataObject) -> None:
    method, overrides, body, message = data.draw(requests(era))
    base = era_headers(service, era, message)
    headers = {name.encode(): header_value(value) for name, value in {**base, **overrides}.items()}
    response = send(service, method, headers, body)
    event(f"{method} {response.status_code}")  # pytest --hypothesis-show-statistics: what was reached
    check(response, message)


def test_the_service_still_serves_and_runs_nothing_left_over(service: ServiceProcess) -> None:
    assert httpx.get(f"{service.base_url}/healthz", timeout=10).json()["status"] == "ok"
    wait_for(lambda: httpx.get(f"{service.base_url}/healthz").json()["running_jobs"] == 0)
