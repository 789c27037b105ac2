"""How the REST routes document their errors in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from service.api.schemas import ErrorBody

__all__ = ["error_responses"]

_DESCRIPTIONS = {
    400: "Bad request",
    401: "Authentication required (when `SERVICE_AUTH_TOKENS` is set)",
    404: "No such job",
    409: "Conflict",
    413: "Body larger than `SERVICE_MAX_REQUEST_BODY`",
    421: "Host header not accepted (DNS-rebinding protection)",
    429: "Too many jobs are running: retry later",
    431: "Request headers larger than `SERVICE_MAX_HEADER_BYTES`",
    503: "The store is unavailable: retry later",
}


def error_responses(*codes: int, description: str | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, each with the `{"detail": "..."}` body."""
    return {code: {"model": ErrorBody, "description": description or _DESCRIPTIONS[code]} for code in codes}
