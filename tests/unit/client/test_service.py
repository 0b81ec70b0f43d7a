"""A profile knows its service, and a vanished account is explained in plain words:
the service binding in parley.service, the refresh refusal turned into AccountGone
by the HTTP client, and the CLI's message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from parley.api import ApiClient
from parley.endpoints import Endpoints
from parley.errors import AccountGone, AuthenticationError, ServiceMismatch
from parley.service import SERVICE_FILE, account_gone, check_service, remember_service
from parley.store import Tokens

LOCAL = Endpoints("http://127.0.0.1:8787", "ws://127.0.0.1:8787/local", stack_id="a1b2")
AWS = Endpoints("https://abc.execute-api.eu-west-1.amazonaws.com", "wss://def.example/prod")


def _saved(directory: Path) -> dict[str, str]:
    return dict(json.loads((directory / SERVICE_FILE).read_text()))


def test_a_profile_from_before_adopts_the_service_it_is_opened_with(tmp_path: Path) -> None:
    check_service(tmp_path, LOCAL, "alice")
    assert _saved(tmp_path) == {"http_url": LOCAL.http_url, "stack_id": "a1b2"}


def test_the_same_local_state_on_another_port_is_the_same_service(tmp_path: Path) -> None:
    remember_service(tmp_path, LOCAL)
    moved = Endpoints("http://127.0.0.1:40001", "ws://127.0.0.1:40001/local", stack_id="a1b2")
    check_service(tmp_path, moved, "alice")
    assert _saved(tmp_path)["http_url"] == "http://127.0.0.1:40001"


def test_a_local_stack_started_fresh_says_the_account_is_gone_and_what_to_do(
    tmp_path: Path,
) -> None:
    remember_service(tmp_path, LOCAL)
    fresh = Endpoints(LOCAL.http_url, LOCAL.ws_url, stack_id="ffff")
    with pytest.raises(AccountGone) as gone:
        check_service(tmp_path, fresh, "alice")
    assert gone.value.reason == "forgotten"
    message = str(gone.value)
    assert "--fresh" in message
    assert "python -m local reset" in message
    assert f"mv {tmp_path} {tmp_path}.old" in message
    assert "parley --profile alice signup <phone>" in message
    assert _saved(tmp_path)["stack_id"] == "a1b2"  # not adopted


@pytest.mark.parametrize(
    ("made_on", "now"),
    [
        (LOCAL, AWS),
        (AWS, LOCAL),
        (AWS, Endpoints("https://other.example", "wss://other.example/prod")),
    ],
    ids=["local-then-aws", "aws-then-local", "two-deployments"],
)
def test_another_service_is_refused_naming_both(
    tmp_path: Path, made_on: Endpoints, now: Endpoints
) -> None:
    remember_service(tmp_path, made_on)
    with pytest.raises(ServiceMismatch) as refused:
        check_service(tmp_path, now, "alice")
    message = str(refused.value)
    assert f"belongs to the service at {made_on.http_url}" in message
    assert f"endpoints now point at {now.http_url}" in message
    assert _saved(tmp_path)["http_url"] == made_on.http_url


@pytest.mark.parametrize(
    ("code", "reason", "says"),
    [
        ("device_signed_out", "signed_out", "has been signed out"),
        ("invalid_token", "unknown", "the account was deleted"),
    ],
)
def test_a_refused_refresh_is_explained(tmp_path: Path, code: str, reason: str, says: str) -> None:
    error = AuthenticationError(401, code, "whatever the server said")
    explained = account_gone(error, profile="alice", directory=tmp_path)
    assert isinstance(explained, AccountGone)
    assert (explained.reason, explained.code, explained.status) == (reason, code, 401)
    assert says in str(explained)
    assert "parley --profile alice signup <phone>" in str(explained)
    # the status is not shown; the profile's path (under pytest's numbered
    # temporary directory, which may well be pytest-401) is
    assert "401" not in str(explained).replace(str(tmp_path), "<profile>")


def test_a_device_signed_out_by_a_move_of_its_number_is_told_so(tmp_path: Path) -> None:
    error = AuthenticationError(401, "device_signed_out", "signed out", {"reason": "reregistered"})
    explained = account_gone(error, profile="alice", directory=tmp_path)
    assert isinstance(explained, AccountGone)
    assert (explained.reason, explained.code) == ("moved", "device_signed_out")
    assert "registered on another phone" in str(explained)
    assert "registration lock" in str(explained)
    assert "parley --profile alice signup <phone>" in str(explained)
    assert "its owner signed it out" not in str(explained)


def test_other_refusals_are_left_as_they_are(tmp_path: Path) -> None:
    wrong_code = AuthenticationError(401, "invalid_code", "wrong code")
    assert account_gone(wrong_code, profile="alice", directory=tmp_path) is wrong_code


class _Keeper:
    def __init__(self) -> None:
        self.current = Tokens("old", "refresh-1", 0.0)

    def tokens(self) -> Tokens:
        return self.current

    def save_tokens(self, tokens: Tokens) -> None:
        self.current = tokens


@asynccontextmanager
async def signed_out_service() -> AsyncIterator[str]:
    """A service whose refresh answers as it does for a signed-out device."""

    async def refresh(_request: web.Request) -> web.Response:
        body = {
            "error": {"code": "device_signed_out", "message": "this device has been signed out"}
        }
        return web.json_response(body, status=401)

    app = web.Application()
    app.router.add_post("/v1/auth/refresh", refresh)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.mark.asyncio
async def test_the_http_client_raises_the_explanation_when_refresh_is_refused(
    tmp_path: Path,
) -> None:
    async with signed_out_service() as url, aiohttp.ClientSession() as http:
        api = ApiClient(
            url,
            http,
            _Keeper(),
            explain=lambda e: account_gone(e, profile="phone", directory=tmp_path),
        )
        with pytest.raises(AccountGone, match="link this device again") as gone:
            await api.refresh()
        assert gone.value.reason == "signed_out"
        # without an explanation, the service's own answer
        bare = ApiClient(url, http, _Keeper())
        with pytest.raises(AuthenticationError) as refused:
            await bare.refresh()
        assert not isinstance(refused.value, AccountGone)
        assert refused.value.code == "device_signed_out"
