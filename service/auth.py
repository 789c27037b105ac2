"""Bearer-token authentication shared by /mcp and the REST routes.

Tokens come from `SERVICE_AUTH_TOKENS`, a JSON object mapping each principal to its token
or to `sha256:<hex digest of the token>`. Any other scheme (JWT, OAuth introspection) plugs
in as another `TokenVerifier`: pass it to `create_app(token_verifier=...)`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.requests import HTTPConnection

__all__ = ["StaticTokenVerifier", "principal_of"]

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
