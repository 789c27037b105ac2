"""Who is calling, the same way on /mcp and the REST routes.

Three ways, the first given wins: a host's own `authenticate(request)` (its session cookie,
its API keys), which names the principal or returns None; a `TokenVerifier` (JWT, OAuth
introspection) for bearer tokens; or the static tokens of `SERVICE_AUTH_TOKENS`, a JSON
object mapping each principal to its token or to `sha256:<hex digest of the token>`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.provider import AccessToken, TokenVerifier
from starlette.requests import HTTPConnection, Request

from service.middleware.authentication import UserOf

__all__ = ["Authenticate", "StaticTokenVerifier", "principal_of", "user_of"]

Authenticate = Callable[[Request], Awaitable[str | None]]
"""A host's authentication: the name of the principal a request comes from, or None (it gets a 401)."""

SHA256_PREFIX = "sha256:"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class StaticTokenVerifier:
    """Checks a bearer token against configured principals, in time that does not depend on the match."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._digests: list[tuple[str, bytes]] = []
        for principal, token in tokens.items():
            if token.startswith(SHA256_PREFIX):
                digest = bytes.fromhex(token.removeprefix(SHA256_PREFIX))
                if len(digest) != hashlib.sha256().digest_size:
                    raise ValueError(f"the sha256 digest for {principal!r} must be 64 hex digits")
            else:
                digest = _digest(token)
            self._digests.append((principal, digest))

    async def verify_token(self, token: str) -> AccessToken | None:
        presented = _digest(token)
        found = None
        for principal, digest in self._digests:  # no early exit: every candidate is compared
            if hmac.compare_digest(presented, digest):
                found = principal
        return None if found is None else AccessToken(token=token, client_id=found, scopes=[])


def principal_of(connection: HTTPConnection) -> str | None:
    """The authenticated principal of a request, or None when authentication is off."""
    user = connection.scope.get("user")
    return user.access_token.client_id if isinstance(user, AuthenticatedUser) else None


def user_of(
    *, authenticate: Authenticate | None, token_verifier: TokenVerifier | None, tokens: Mapping[str, str]
) -> UserOf | None:
    """How the service's routes tell who calls, from the first way given; None when authentication is off."""
    if authenticate is not None:
        return _named_by(authenticate)
    if token_verifier is None and tokens:
        token_verifier = StaticTokenVerifier(tokens)
    if token_verifier is None:
        return None
    backend = BearerAuthBackend(token_verifier)

    async def bearer(request: Request) -> AuthenticatedUser | None:
        result = await backend.authenticate(request)  # the SDK's: the token's expiry and audience checked
        return None if result is None else result[1]

    return bearer


def _named_by(authenticate: Authenticate) -> UserOf:
    async def named(request: Request) -> AuthenticatedUser | None:
        principal = await authenticate(request)
        return None if principal is None else AuthenticatedUser(AccessToken(token="", client_id=principal, scopes=[]))

    return named
