"""HTTP contacts routes: GET /v1/contacts, PUT and DELETE /v1/contacts/{user_id}.

A Powertools Router that the HttpApi resolver includes (see handlers/http_media.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from parley_server.handlers import _http
from parley_server.handlers._routes import Routes
from parley_server.logic import contacts
from parley_server.models.http import ContactsAnswer, UserId
from parley_server.wiring import adapters

__all__ = ["router"]

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
api = Routes(router)

_SAVED = (
    "Your contacts are who you say they are: they (and nobody else, when your last seen"
    " is `contacts`) see your last seen. Fetching keys or exchanging messages adds nobody."
    " Each device may save or remove a number of contacts an hour (429 rate_limited)."
)


@api.get(
    "/v1/contacts",
    summary="The contacts your devices saved",
    description=_SAVED,
    **_http.bearer("contacts", 401, 503),
)
def list_contacts() -> ContactsAnswer:
    caller = _http.caller(router.context)
    return ContactsAnswer(contacts=contacts.list_saved(caller, contacts=adapters().contacts))


@api.put(
    "/v1/contacts/<user_id>",
    status_code=204,
    summary="Save a contact",
    description=_SAVED,
    **_http.bearer("contacts", 400, 401, 404, 429, 503, no_store=False),
)
def save_contact(user_id: UserId) -> None:
    _write(contacts.save, user_id)


@api.delete(
    "/v1/contacts/<user_id>",
    status_code=204,
    summary="Remove a contact",
    description=_SAVED,
    **_http.bearer("contacts", 400, 401, 429, 503, no_store=False),
)
def remove_contact(user_id: UserId) -> None:
    _write(contacts.remove, user_id)


def _write(use_case: Callable[..., None], user_id: str) -> None:
    """Save or remove: the caller's write, with its rate limit."""
    deps = adapters()
    use_case(
        _http.caller(router.context),
        user_id,
        contacts=deps.contacts,
        limiter=deps.limiter,
        limits=deps.config.limits,
        now=time.time(),
    )
