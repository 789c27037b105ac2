"""The SDK members the package relies on (`service.mcp.sdk` lists them), checked against the installed SDK.

None of them is the SDK's public API, and an upgrade may move any. These tests fail at once,
naming what moved, instead of an override that silently never runs. mypy's
`explicit-override` catches an `@override` whose base method is gone; this also catches a
changed signature or body, a private attribute that is no longer set, and an override that
the registry does not list (so every one of them has its digest).

After an upgrade that fails here: `service/mcp/sdk.py` says what to do.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import EventMessage, EventStore, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from service.mcp.event_store import SessionEventStore
from service.mcp.fast_transport import FastTransport
from service.mcp.keepalive import PING_INTERVAL_NAME
from service.mcp.manager import SessionManager
from service.mcp.sdk import ATTRIBUTES, CALLED, CONSTANTS, IMPORTED, OVERRIDDEN, REPLACED
from service.mcp.transport import ResumableTransport

pytestmark = pytest.mark.in_process

OURS: list[tuple[type[Any], type[Any]]] = [
    (ResumableTransport, StreamableHTTPServerTransport),
    (FastTransport, StreamableHTTPServerTransport),
    (SessionManager, StreamableHTTPSessionManager),
    (SessionEventStore, EventStore),
]


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
    for name in ATTRIBUTES[StreamableHTTPServerTransport]:
        assert hasattr(transport, name), f"StreamableHTTPServerTransport no longer has {name}"
    manager = StreamableHTTPSessionManager(app=Server("seam"))
    for name in ATTRIBUTES[StreamableHTTPSessionManager]:
        assert hasattr(manager, name), f"StreamableHTTPSessionManager no longer has {name}"
    assert list(EventMessage.__dataclass_fields__) == ["message", "event_id"]


@pytest.mark.parametrize("module", IMPORTED)
def test_the_names_imported_from_the_sdk_are_there(module: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in IMPORTED[module] if not hasattr(imported, name)]
    assert not missing, f"{module} no longer has {missing}"


@pytest.mark.parametrize("name", CONSTANTS)
def test_the_module_constants_the_service_sets_are_there_and_read(name: str) -> None:
    """`service.mcp.keepalive` sets a private constant of the 2026-07-28 path: it must be there, and read."""
    module, reader, expected = CONSTANTS[name]
    assert name == PING_INTERVAL_NAME
    assert isinstance(getattr(module, name, None), float), f"{name} is gone"
    function = getattr(module, reader)
    assert name in inspect.getsource(function)
    assert digest(function) == expected, (
        f"{reader} changed upstream: check that it still reads {name} (service/mcp/keepalive.py), "
        "then update CONSTANTS in service/mcp/sdk.py"
    )


@pytest.mark.parametrize(("sdk", "name"), list(OVERRIDDEN), ids=lambda value: getattr(value, "__name__", value))
def test_the_sdk_members_the_service_overrides_are_the_code_it_was_written_against(sdk: type[Any], name: str) -> None:
    assert digest(getattr(sdk, name)) == OVERRIDDEN[sdk, name], (
        f"{sdk.__name__}.{name} changed upstream: read it, bring our override in step (service/mcp/), "
        "then update OVERRIDDEN in service/mcp/sdk.py"
    )


@pytest.mark.parametrize(("ours", "sdk"), OURS, ids=lambda cls: cls.__name__)
def test_every_override_is_in_the_registry(ours: type[Any], sdk: type[Any]) -> None:
    """An override without a digest would go unchecked by the test above."""
    unlisted = [name for name in overrides(ours) if hasattr(sdk, name) and (sdk, name) not in OVERRIDDEN]
    unlisted = [
        name
        for name in unlisted
        if not any(name in vars(cls) for cls in ours.__mro__[1:] if cls.__module__.startswith("service."))
    ]
    assert unlisted == [], f"add {sdk.__name__}.{unlisted} to OVERRIDDEN in service/mcp/sdk.py"


@pytest.mark.parametrize(("sdk", "name"), list(REPLACED), ids=lambda value: getattr(value, "__name__", value))
def test_the_sdk_code_the_service_does_instead_is_the_code_it_was_written_against(sdk: type[Any], name: str) -> None:
    assert digest(getattr(sdk, name)) == REPLACED[sdk, name], (
        f"{sdk.__name__}.{name} changed upstream: bring its replacement in step with it "
        "(service/mcp/sdk.py says where), then update REPLACED"
    )
