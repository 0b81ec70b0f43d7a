"""What every route of the HTTP API shares: who the caller is, the bearer scheme
routes declare, and the error answers they document.

The auth middleware (http_api.py) verifies the token and puts the `Caller` in
the resolver's context; routers included by the resolver share that context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_server.logic.ports import Caller
from parley_server.models.errors import Unauthorized
from parley_server.models.http import ErrorAnswer

__all__ = ["BEARER", "CALLER", "bearer", "caller", "responses"]

# `security=` of every route that needs an access token
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
# the context key the auth middleware sets
CALLER = "caller"

_DESCRIBED = {
    400: "invalid input",
    401: "missing, invalid or expired credentials",
    403: "not allowed (group admins only)",
    404: "not found",
    409: "conflicts with what is stored",
    413: "too large",
    423: "the number's account has a registration lock: send its PIN",
    429: "rate limited (see Retry-After)",
    503: "a dependency is unavailable; retry",
}


def caller(context: Mapping[str, Any]) -> Caller:
    """The authenticated caller, as the auth middleware put it in the context."""
    found = context.get(CALLER)
    if not isinstance(found, Caller):
        raise Unauthorized("authentication required")
    return found


def responses(*statuses: int, described: Mapping[int, str] | None = None) -> dict[int, Any]:
    """The OpenAPI `responses` of a route's error answers (`described` overrides the
    usual description of a status)."""
    text = {**_DESCRIBED, **(described or {})}
    return {
        status: {
            "description": text[status],
            "content": {"application/json": {"model": ErrorAnswer}},
        }
        for status in statuses
    }


def bearer(
    tag: str,
    *statuses: int,
    described: Mapping[int, str] | None = None,
    no_store: bool = True,
) -> dict[str, Any]:
    """The decorator arguments of a route that needs an access token: its OpenAPI
    tag, the bearer scheme, `Cache-Control: no-store` (its answer is one caller's;
    routes that answer 204 pass `no_store=False`) and the error answers it documents."""
    route: dict[str, Any] = {
        "tags": [tag],
        "security": BEARER,
        "responses": responses(*statuses, described=described),
    }
    if no_store:
        route["cache_control"] = "no-store"
    return route
