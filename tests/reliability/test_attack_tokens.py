"""Attack: getting in with a token the service did not issue, or no longer honours.

Every forgery in tests/reliability/forgery.py is tried at each door: the HTTP
API, the WebSocket authorizer (both in-process with their functions' exact
environments) and the WebSocket handshake of a running local stack. A genuine
token is the control at every door. A device signed out by refresh-token reuse
is refused everywhere with a token that was valid a moment before.
"""

from __future__ import annotations

from typing import Any

import pytest

from local.iam.enforce import acting_as
from parley_server.handlers import ws_authorizer
from tests.integration.test_authorizer import connect_event
from tests.integration.test_http_harness import (
    Device,
    LambdaContextStub,
    call,
    sign_up,
    with_keys,
)
from tests.reliability.forgery import FORGERIES, Forgery, genuine
from tests.reliability.stack import Stack, handshake_status, http_from
from tests.reliability.stack import sign_up as sign_up_on_stack

SECRET = b"k" * 64  # the signing secret of the `aws` fixture


def authorized(token: str) -> bool:
    """Whether the WebSocket authorizer lets this token connect."""
    try:
        with acting_as("WsAuthorizer"):
            answer = ws_authorizer.handler(connect_event(token), LambdaContextStub())
    except Exception as refused:
        # API Gateway's contract: exactly this message means 401
        if str(refused) != "Unauthorized":
            raise
        return False
    statement = answer["policyDocument"]["Statement"][0]
    return bool(statement["Effect"] == "Allow")


@pytest.fixture
def alice(function_env: Any) -> Device:
    function_env("HttpApi")
    return with_keys(sign_up("+14155552671"))


@pytest.mark.parametrize("forgery", FORGERIES, ids=str)
def test_a_forged_token_is_refused_by_the_http_api(alice: Device, forgery: Forgery) -> None:
    real = genuine(SECRET, alice.user_id, alice.device_id)
    assert call("GET", "/v1/keys/count", token=real).status == 200

    answer = call(
        "GET", "/v1/keys/count", token=forgery.make(SECRET, alice.user_id, alice.device_id)
    )

    assert (answer.status, answer.code) == (401, "invalid_token"), answer.body
    assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("forgery", FORGERIES, ids=str)
def test_a_forged_token_is_refused_by_the_websocket_authorizer(
    alice: Device, function_env: Any, forgery: Forgery
) -> None:
    function_env("WsAuthorizer")
    assert authorized(genuine(SECRET, alice.user_id, alice.device_id))

    assert not authorized(forgery.make(SECRET, alice.user_id, alice.device_id))


def test_a_token_naming_a_device_that_never_signed_in_is_refused(
    alice: Device, function_env: Any
) -> None:
    stranger = genuine(SECRET, alice.user_id, "f" * 16)

    assert call("GET", "/v1/keys/count", token=stranger).code == "invalid_token"
    function_env("WsAuthorizer")
    assert not authorized(stranger)


def test_a_signed_out_device_is_refused_at_once_though_its_token_has_not_expired(
    alice: Device, function_env: Any
) -> None:
    assert call("GET", "/v1/keys/count", token=alice.access_token).status == 200
    # a stolen refresh token is used by the thief, who goes on refreshing, then by
    # the victim: the family is revoked and the device signed out
    thief = call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token})
    assert thief.status == 200
    later = call("POST", "/v1/auth/refresh", body={"refresh_token": thief.body["refresh_token"]})
    assert later.status == 200
    replay = call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token})
    assert replay.code == "invalid_token"

    for token in (alice.access_token, thief.body["access_token"], later.body["access_token"]):
        assert call("GET", "/v1/keys/count", token=token).code == "invalid_token"
    function_env("WsAuthorizer")
    assert not authorized(alice.access_token)
    assert not authorized(later.body["access_token"])


def test_a_thief_who_refreshed_first_loses_what_they_got_when_the_device_asks_again(
    alice: Device, function_env: Any
) -> None:
    # the thief refreshes with a stolen token and the device, a moment later, with the
    # same one: that is also what a device whose answer was lost does, so the device
    # is answered again; what the thief got is refused at once, and its refresh
    # token, shown, signs the device out (the theft is found out)
    thief = call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token})
    device = call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token})
    assert (thief.status, device.status) == (200, 200)

    assert call("GET", "/v1/keys/count", token=thief.body["access_token"]).code == "invalid_token"
    assert call("GET", "/v1/keys/count", token=device.body["access_token"]).status == 200
    function_env("WsAuthorizer")
    assert not authorized(thief.body["access_token"])
    assert authorized(device.body["access_token"])

    function_env("HttpApi")
    again = call("POST", "/v1/auth/refresh", body={"refresh_token": thief.body["refresh_token"]})
    assert again.code == "invalid_token"
    assert call("GET", "/v1/keys/count", token=device.body["access_token"]).code == "invalid_token"


# -- the WebSocket handshake of a running stack -------------------------------------------


def _stack_secret(stack: Stack) -> bytes:
    value = stack.moto("secretsmanager").get_secret_value(SecretId="parley-local-signing-key")
    return str(value["SecretString"]).encode()


async def test_every_forged_token_is_refused_at_the_websocket_handshake(stack: Stack) -> None:
    secret = _stack_secret(stack)
    alice = await sign_up_on_stack(stack)
    assert await handshake_status(stack, alice.access_token) == 101

    refused = {
        forgery.name: await handshake_status(
            stack, forgery.make(secret, alice.user_id, alice.device_id)
        )
        for forgery in FORGERIES
    }

    # 401 from the authorizer; a token too long for a request line never gets that far
    assert refused.pop("oversized") in (400, 401, 414)
    assert refused == {name: 401 for name in refused}


async def test_a_signed_out_device_cannot_open_a_websocket(stack: Stack) -> None:
    alice = await sign_up_on_stack(stack)
    assert await handshake_status(stack, alice.access_token) == 101
    async with http_from() as http:
        # a token traded twice, then the first shown again: the family is revoked
        token = alice.refresh_token
        for _ in range(2):
            async with http.post(
                stack.http_url + "/v1/auth/refresh", json={"refresh_token": token}
            ) as answer:
                token = (await answer.json())["refresh_token"]
        async with http.post(
            stack.http_url + "/v1/auth/refresh", json={"refresh_token": alice.refresh_token}
        ) as answer:
            await answer.read()
        assert answer.status == 401

    assert await handshake_status(stack, alice.access_token) == 401
