"""The SDK's session manager, building a resumable transport per session, and moving sessions between replicas.

Overrides the manager's private `_admit_session`, `_serve_opening_request`,
`_handle_stateful_request` and `_discard_session`: the SDK has no public hook for a session's
start or end, nor a way to serve a session it did not open (`service.mcp.sdk` lists them, and
`tests/mcp/test_sdk_seam.py` guards them). Upstream, a transport factory, a session store
(the C# SDK's `ISessionMigrationHandler`) and an `on_session_closed` callback would remove them.

With a replica id (`SERVICE_REPLICA_ID`), session ids carry it as a prefix, `<replica>.<hex>`
(visible ASCII, as the spec asks), so that a load balancer can send each request of a
session to the replica that holds it.

A session outlives its replica where the store is shared (`SessionRelay`): what `initialize`
agreed on is recorded, and a request for a session this process does not hold, whose holder
is gone (crashed, or stopped and released it), makes this process its holder (`adopt`). One
replica wins; a holder that is alive keeps it. The adopted session's connection starts
initialized, so its client goes on with the same `Mcp-Session-Id`; its streams are in the
shared log, so a resumed one is read from there (`ResumableTransport`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from uuid import uuid4

import anyio
from anyio.abc import TaskStatus
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.runner import serve_connection
from mcp.server.streamable_http import GET_STREAM_KEY, MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext
from mcp_types import INTERNAL_ERROR, ErrorData, InitializeRequestParams, JSONRPCError
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from typing_extensions import override

from service.mcp.event_store import SessionEventStore, session_partition
from service.mcp.fast_transport import FastTransport
from service.mcp.keepalive import set_modern_ping_interval
from service.mcp.transport import ResumableTransport
from service.stores.base import EventLog, SessionBusy, SessionRecord, SessionRelay, StoreError
from service.stores.local import LocalRelay
from service.telemetry import context

__all__ = ["ADOPT_WAIT", "SessionManager"]

logger = logging.getLogger(__name__)

ADOPT_WAIT = 5.0
"""Seconds a request for a session held elsewhere waits for that holder to release it or lapse before it gets a
503: a crashed replica's heartbeat outlives it by up to a lease (the service passes `SERVICE_LEASE_TTL` + 1 s)."""


class SessionManager(StreamableHTTPSessionManager):
    """Builds a `ResumableTransport` (or the `FastTransport` over it) per session, each with its own event store.

    The core of lossless resumption, with nothing of jobs: an app with its own `Server` takes
    this and an `EventLog` (`service.stores`), and serves it with the SDK's `StreamableHTTPASGIApp`.
    """

    @override
    def __init__(
        self,
        app: Server[Any],
        *,
        event_log: EventLog,
        relay: SessionRelay | None = None,
        ping_interval: float = 15.0,
        replica: str = "",
        fast: bool = True,
        adopt_wait: float = ADOPT_WAIT,
        on_replay: Callable[[int], None] = lambda events: None,
        **options: Any,
    ) -> None:
        super().__init__(app, event_store=None, **options)
        self._event_log = event_log
        self._relay: SessionRelay = relay if relay is not None else LocalRelay()
        self._id_prefix = f"{replica}." if replica else ""
        self._ping_interval = ping_interval
        set_modern_ping_interval(ping_interval)
        self._adopt_wait = adopt_wait
        self._on_replay = on_replay
        self._transport_class = FastTransport if fast else ResumableTransport
        # Each live session's principal (None without authentication). Our own record: on
        # shutdown the SDK forgets its sessions before it discards them.
        self._owners: dict[str, str | None] = {}
        self._adopting: dict[str, anyio.Lock] = {}
        self._released: set[str] = set()
        """Sessions given up while this process goes on (`release`)."""
        self._releasing = False
        """Set as a replica of a shared store stops: its sessions are released for others to adopt, not ended."""

    def transport_of(self, session_id: str) -> ResumableTransport | None:
        """The live session's transport, whose `push` sends on its GET stream; None once it has ended."""
        transport = self._server_instances.get(session_id)
        if session_id not in self._owners or not isinstance(transport, ResumableTransport):
            return None
        return transport

    def owner_of(self, session_id: str) -> str | None:
        """The principal that opened a live session (None without authentication, or if it is not live)."""
        return self._owners.get(session_id)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._owners

    def __len__(self) -> int:
        return len(self._owners)

    def close_streams(self) -> None:
        """End every open GET stream: at shutdown, so that clients resume elsewhere instead of holding it up."""
        for transport in self._server_instances.values():
            transport.close_standalone_sse_stream()

    def release_sessions(self) -> None:
        """Stop for good without ending the sessions (a rolling restart): each is released as it closes, and
        its requests' streams end now, so that their clients resume where the session is adopted next."""
        self._releasing = True
        for session_id in self._owners:
            self._relay.release_session(session_id)  # now: another replica may adopt it while this one drains
        for transport in self._server_instances.values():
            if isinstance(transport, ResumableTransport):
                transport.close_request_streams()

    async def release(self, session_id: str) -> None:
        """Give the session up while this process goes on: another replica, which its requests reach now (its
        home, back), asked for it. Its streams end, and their clients resume them there (its calls' jobs were
        handed over first)."""
        transport = self._server_instances.get(session_id)
        if transport is None:
            return
        self._released.add(session_id)
        if isinstance(transport, ResumableTransport):
            transport.close_request_streams()
        transport.close_standalone_sse_stream()
        await self._discard_session(session_id, transport)

    def _new_transport(self, session_id: str, *, adopted: bool = False) -> ResumableTransport:
        transport = self._transport_class(
            mcp_session_id=session_id,
            event_store=SessionEventStore(self._event_log, session_id),
            is_json_response_enabled=self.json_response,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
            ping_interval=self._ping_interval,
            on_replay=self._on_replay,
            follow=self._relay.wait_for_session_events if self._relay.shared else None,
        )
        transport.adopted = adopted
        return transport

    def _hold(self, session_id: str, transport: ResumableTransport, requestor: AuthorizationContext | None) -> None:
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        self._owners[session_id] = None if requestor is None else requestor["client_id"]

    @override
    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        session_id = f"{self._id_prefix}{uuid4().hex}"
        transport = self._new_transport(session_id)
        self._hold(session_id, transport, requestor)
        owner = self._owners[session_id]
        self._relay.register_session(session_id, owner)
        context.session_id.set(session_id)  # the rest of the `initialize` request logs it
        logger.info("MCP session opened%s", "" if owner is None else f" by {owner}")
        return transport

    @override
    async def _serve_opening_request(
        self, http_transport: StreamableHTTPServerTransport, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The SDK's, with the session served by `_serve_session` and, once it is established, described to the
        relay: what a replica that adopts it later needs."""
        session_id = http_transport.mcp_session_id
        assert session_id is not None
        assert self._task_group is not None
        established = False
        try:
            connection: Connection = await self._task_group.start(self._serve_session, http_transport, None)
            status = await _answer(http_transport.handle_request, scope, receive, send)
            established = status is not None and status < HTTPStatus.BAD_REQUEST
            if established and connection.client_params is not None:
                client = connection.client_params.model_dump_json(by_alias=True, exclude_none=True)
                self._relay.describe_session(session_id, connection.protocol_version, client)
        finally:
            if not established:
                await self._discard_session(session_id, http_transport)

    async def _serve_session(
        self,
        transport: StreamableHTTPServerTransport,
        adopted: SessionRecord | None,
        *,
        task_status: TaskStatus[Connection] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the session's server loop until it ends, as the SDK's manager does (`serve_loop`); an adopted
        session's connection starts as its `initialize` left it."""
        session_id = transport.mcp_session_id
        assert session_id is not None
        async with transport.connect() as (read_stream, write_stream):
            dispatcher: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
                read_stream, write_stream, inline_methods=frozenset({"initialize"})
            )
            connection = Connection.for_loop(dispatcher, session_id=session_id)
            if adopted is not None and adopted.protocol_version is not None:
                connection.protocol_version = adopted.protocol_version
                if adopted.client is not None:
                    connection.client_params = InitializeRequestParams.model_validate_json(adopted.client)
                connection.initialized.set()
            task_status.started(connection)
            try:
                # The transport cancels its idle scope once no request has been in flight for the idle timeout.
                idle_scope = transport.idle_scope or anyio.CancelScope()
                with idle_scope:
                    await serve_connection(
                        self.app, dispatcher, connection=connection, lifespan_state=self._lifespan_state
                    )
                if idle_scope.cancelled_caught:
                    logger.info("MCP session idle timeout", extra={"session_id": session_id})
            except Exception:
                logger.exception("MCP session crashed", extra={"session_id": session_id})
            finally:
                await self._discard_session(session_id, transport)

    @override
    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = Headers(scope=scope).get(MCP_SESSION_ID_HEADER)
        held = session_id in self._server_instances
        # Stopping, this process takes no session up, nor a stream of one it let go (a resumption that came before
        # the server closed its listener): a balancer tries another replica on a 503 (nginx: `proxy_next_upstream`),
        # a client resumes after `Retry-After`. A call that comes then is still taken, and handed over (`JobEngine`).
        if session_id is not None and self._releasing and (not held or scope["method"] == "GET"):
            await _unavailable("this replica is stopping; another one holds the session")(scope, receive, send)
            return
        if session_id is not None and not held:
            try:
                await self._adopt(session_id, scope)
            except (SessionBusy, StoreError) as exc:
                logger.warning("MCP session %s not adopted: %s", session_id[:64], exc)
                await _unavailable(str(exc))(scope, receive, send)
                return
        await super()._handle_stateful_request(scope, receive, send)

    async def _adopt(self, session_id: str, scope: Scope) -> None:
        """Hold the session here if the store knows it, it is the caller's, and its holder is gone (the caller then
        gets the SDK's 404 for any session it cannot have)."""
        lock = self._adopting.setdefault(session_id, anyio.Lock())
        try:
            async with lock:
                if session_id in self._server_instances:
                    return  # adopted by a request that came at the same moment
                user = scope.get("user")
                requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
                record = await self._relay.find_session(session_id)
                owner = None if requestor is None else requestor["client_id"]
                if record is None or record.owner != owner or record.protocol_version is None:
                    return
                if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
                    return
                adopted = await self._relay.adopt_session(session_id, wait=self._adopt_wait)
                if adopted is None:
                    return
                # Read once, so that this store's ids for the session go above the ones its last holder wrote.
                await self._event_log.read(session_partition(session_id), GET_STREAM_KEY)
                transport = self._new_transport(session_id, adopted=True)
                self._hold(session_id, transport, requestor)
                assert self._task_group is not None
                await self._task_group.start(self._serve_session, transport, adopted)
                logger.warning("MCP session adopted from replica %s", record.replica, extra={"session_id": session_id})
        finally:
            if not lock.locked():
                self._adopting.pop(session_id, None)

    @override
    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        await super()._discard_session(session_id, transport)
        if session_id in self._owners:
            del self._owners[session_id]
            if self._releasing or session_id in self._released:
                self._released.discard(session_id)
                self._relay.release_session(session_id)
                logger.info("MCP session released for another replica", extra={"session_id": session_id})
                return
            self._relay.unregister_session(session_id)
            logger.info("MCP session closed", extra={"session_id": session_id})
            await self._event_log.end_partition(session_partition(session_id))


async def _answer(app: Callable[[Scope, Receive, Send], Any], scope: Scope, receive: Receive, send: Send) -> int | None:
    """Run `app` for one request and return the HTTP status it answered with (None if it sent none)."""
    status: int | None = None

    async def watch_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    await app(scope, receive, watch_status)
    return status


def _unavailable(reason: str) -> Response:
    """503 with `Retry-After`: the session may be adopted shortly (its holder's heartbeat lapses), or Redis is back."""
    body = JSONRPCError(
        jsonrpc="2.0", id=None, error=ErrorData(code=INTERNAL_ERROR, message=f"Session unavailable: {reason}")
    )
    return Response(
        body.model_dump_json(by_alias=True, exclude_none=True),
        status_code=HTTPStatus.SERVICE_UNAVAILABLE,
        media_type="application/json",
        headers={"Retry-After": "1"},
    )
