"""The SDK members the service's MCP layer relies on, checked by name and signature.

`service/mcp/transport.py`, `fast_transport.py`, `manager.py` and `event_store.py` subclass SDK
classes, override private methods and read private attributes: none of that is the SDK's
public API, and an upgrade may move it. These tests fail at once, naming what moved, instead
of an override that silently never runs. mypy's `explicit-override` catches an `@override`
whose base method is gone; this also catches a changed signature, a private attribute that
is no longer set, and a change to the SDK code that the fast transport replaces.

After an upgrade that fails here: read the SDK's new code for the member named, adapt the
module that uses it (or switch the fast transport off, `SERVICE_MCP_FAST_TRANSPORT=false`, and drop
it), then update the expectation below.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from mcp.server.lowlevel.server import Server
from mcp.server.session import ServerSession
from mcp.server.streamable_http import EventMessage, EventStore, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from service.mcp.event_store import SessionEventStore
from service.mcp.fast_transport import FastTransport
from service.mcp.keepalive import PING_INTERVAL_NAME
from service.mcp.manager import SessionManager
from service.mcp.transport import ResumableTransport

pytestmark = pytest.mark.in_process

OURS: list[tuple[type[Any], type[Any]]] = [
    (ResumableTransport, StreamableHTTPServerTransport),
    (FastTransport, StreamableHTTPServerTransport),
    (SessionManager, StreamableHTTPSessionManager),
    (SessionEventStore, EventStore),
]

# SDK methods the service calls without overriding them, with their parameters.
CALLED: dict[type[Any], dict[str, tuple[str, ...]]] = {
    StreamableHTTPServerTransport: {
        "_mint_priming_event": ("self", "stream_id", "protocol_version"),
        "_create_error_response": ("self", "error_message", "status_code", "error_code", "headers"),
        "_validate_request_headers": ("self", "request", "send"),
        "_check_content_type": ("self", "request"),
        "_create_session_message": ("self", "message", "request", "request_id", "protocol_version"),
        "_clean_up_memory_streams": ("self", "request_id"),
        "close_sse_stream": ("self", "request_id"),
        "close_standalone_sse_stream": ("self",),
    },
    StreamableHTTPSessionManager: {
        "run": ("self",),
    },
}

# Attributes the service reads or sets on SDK objects.
TRANSPORT_ATTRIBUTES = (
    "mcp_session_id",
    "is_json_response_enabled",
    "idle_scope",
    "_request_streams",
    "_sse_stream_writers",
    "_idle_timeout",
    "_read_stream_writer",
    "_read_stream",
    "_write_stream",
)
MANAGER_ATTRIBUTES = (
    "_server_instances",
    "_session_owners",
    "max_sessions",
    "json_response",
    "security_settings",
    "retry_interval",
    "session_idle_timeout",
)

# Module-level names imported from the SDK, private modules included.
IMPORTED = {
    "mcp.server.streamable_http": (
        "GET_STREAM_KEY",
        "LAST_EVENT_ID_HEADER",
        "MCP_SESSION_ID_HEADER",
        "REQUEST_CANCELLED",
        "REQUEST_STREAM_BUFFER_SIZE",
        "EventMessage",
        "SSEEvent",
        "StreamId",
        "check_accept_headers",
    ),
    "mcp.server.connection": ("allowed_log_levels",),
    "mcp.shared._context_streams": ("create_context_streams",),
    "mcp.shared._stream_protocols": ("ReadStream", "WriteStream"),
    "mcp.shared.inbound": ("MCP_PROTOCOL_VERSION_HEADER",),
}

# The SDK code that `service.mcp.fast_transport` replaces: when it changes, the fast transport must be
# brought in step with it (fast_transport.py's docstring says how), or switched off. A digest of
# each member's source; update it once the new code has been read.
REPLACED = {
    (StreamableHTTPServerTransport, "_handle_post_request"): "cc4f2cd0c9e3",
    (StreamableHTTPServerTransport, "connect"): "fbb24a6b38c3",
    (StreamableHTTPServerTransport, "_terminate_unanswered_request"): "1e65ccb1f1ac",
    (StreamableHTTPServerTransport, "_create_event_data"): "89c55d1c9383",
    # `service.tools.sinks.SerializedRequestStreamSink` writes what this sends, and applies its gate.
    (ServerSession, "send_log_message"): "5517801f2792",
}

# The 2026-07-28 handler, whose keep-alive `service.mcp.keepalive` sets.
MODERN_HANDLER = "cde3cb6094dd"


def parameters(function: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(inspect.signature(inspect.unwrap(function)).parameters)


def overrides(cls: type[Any]) -> list[str]:
    """The methods `cls` itself defines with `@override`."""
    return [name for name, member in vars(cls).items() if callable(member) and _marked(member)]


def _marked(function: Callable[..., Any]) -> bool:
    return bool(getattr(inspect.unwrap(function), "__override__", False))


def digest(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(inspect.unwrap(function)).encode()).hexdigest()[:12]


@pytest.mark.parametrize(("ours", "sdk"), OURS, ids=lambda cls: cls.__name__)
def test_every_override_overrides_an_sdk_member_with_the_same_parameters(ours: type[Any], sdk: type[Any]) -> None:
    names = overrides(ours)
    assert names, f"{ours.__name__} marks no method with @override"
    for name in names:
        if any(name in vars(cls) for cls in ours.__mro__[1:] if cls.__module__.startswith("service.")):
            continue  # overrides one of ours (FastTransport over ResumableTransport): mypy checks those
        base = getattr(sdk, name, None)
        assert base is not None, f"{sdk.__name__}.{name} is gone: {ours.__name__}.{name} would never run"
        if name != "__init__":  # constructors take options of their own; their calls to super() are checked below
            assert parameters(getattr(ours, name)) == parameters(base), (
                f"{sdk.__name__}.{name} now takes {parameters(base)}; {ours.__name__}.{name} was written for "
                f"{parameters(getattr(ours, name))}"
            )


@pytest.mark.parametrize(("sdk", "name"), [(sdk, name) for sdk, names in CALLED.items() for name in names])
def test_the_sdk_members_the_service_calls_are_there_with_their_parameters(sdk: type[Any], name: str) -> None:
    member = getattr(sdk, name, None)
    assert member is not None, f"{sdk.__name__}.{name} is gone"
    assert parameters(member) == CALLED[sdk][name], f"{sdk.__name__}.{name} now takes {parameters(member)}"


def test_the_constructors_take_the_options_the_service_passes() -> None:
    transport = inspect.signature(StreamableHTTPServerTransport.__init__).parameters
    for option in ("mcp_session_id", "event_store", "is_json_response_enabled", "security_settings"):
        assert option in transport, f"StreamableHTTPServerTransport() no longer takes {option}"
    for option in ("retry_interval", "idle_timeout"):
        assert option in transport, f"StreamableHTTPServerTransport() no longer takes {option}"
    manager = inspect.signature(StreamableHTTPSessionManager.__init__).parameters
    for option in ("app", "event_store", "json_response", "security_settings", "retry_interval"):
        assert option in manager, f"StreamableHTTPSessionManager() no longer takes {option}"
    for option in ("session_idle_timeout", "max_sessions", "max_request_body_size"):
        assert option in manager, f"StreamableHTTPSessionManager() no longer takes {option}"


def test_the_sdk_objects_have_the_attributes_the_service_reads() -> None:
    transport = StreamableHTTPServerTransport(mcp_session_id="seam", idle_timeout=60)
    for name in TRANSPORT_ATTRIBUTES:
        assert hasattr(transport, name), f"StreamableHTTPServerTransport no longer has {name}"
    manager = StreamableHTTPSessionManager(app=Server("seam"))
    for name in MANAGER_ATTRIBUTES:
        assert hasattr(manager, name), f"StreamableHTTPSessionManager no longer has {name}"
    assert list(EventMessage.__dataclass_fields__) == ["message", "event_id"]


@pytest.mark.parametrize("module", IMPORTED)
def test_the_names_imported_from_the_sdk_are_there(module: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in IMPORTED[module] if not hasattr(imported, name)]
    assert not missing, f"{module} no longer has {missing}"


def test_the_modern_paths_ping_interval_is_the_constant_the_service_sets() -> None:
    """`service.mcp.keepalive` sets a private constant of the 2026-07-28 path: it must be there, and read."""
    from mcp.server import _streamable_http_modern as modern

    assert isinstance(getattr(modern, PING_INTERVAL_NAME, None), float), f"{PING_INTERVAL_NAME} is gone"
    assert PING_INTERVAL_NAME in inspect.getsource(modern.handle_modern_request)
    assert digest(modern.handle_modern_request) == MODERN_HANDLER, (
        "handle_modern_request changed upstream: check that it still pings at "
        f"{PING_INTERVAL_NAME} (service/mcp/keepalive.py), then update MODERN_HANDLER"
    )


@pytest.mark.parametrize(("sdk", "name"), list(REPLACED), ids=lambda value: getattr(value, "__name__", value))
def test_the_sdk_code_the_fast_transport_replaces_is_the_code_it_was_written_against(sdk: type[Any], name: str) -> None:
    assert digest(getattr(sdk, name)) == REPLACED[sdk, name], (
        f"{sdk.__name__}.{name} changed upstream: bring service/mcp/fast_transport.py in step with it "
        "(or set SERVICE_MCP_FAST_TRANSPORT=false and drop the layer), then update REPLACED"
    )
