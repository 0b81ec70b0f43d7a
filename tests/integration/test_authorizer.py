"""The WebSocket $connect REQUEST authorizer with the WsAuthorizer function's
exact environment (moto in-process)."""

from __future__ import annotations

import io
import time
from typing import Any

import jwt
import pytest

from local.iam.enforce import acting_as
from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.handlers import ws_authorizer
from parley_server.logic import tokens
from parley_server.logic.ports import Caller
from parley_server.logic.tokens import derive_keys
from parley_server.models.errors import DependencyUnavailable
from parley_server.store.users import UsersStore
from tests.conftest import FakeAws
from tests.integration.test_http_harness import LambdaContextStub

ALICE = Caller("a" * 32, "1" * 16)
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/local/$connect"
KEYS = derive_keys(b"k" * 64)  # the test secret (tests/conftest.py)


def connect_event(token: str | None) -> dict[str, Any]:
    """A REQUEST authorizer event for a WebSocket $connect, as API Gateway sends it."""
    event: dict[str, Any] = {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": {
            "Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        },
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "extendedRequestId": "ABC=",
            "requestTime": "05/Dec/2026:18:22:26 +0000",
            "messageDirection": "IN",
            "stage": "local",
            "connectedAt": 1796487746123,
            "requestTimeEpoch": 1796487746123,
            "identity": {"sourceIp": "198.51.100.23"},
            "requestId": "NhGk4jPhDoEEMfw=",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "connectionId": "NhGk4cPhDoECJfw=",
            "apiId": "a1b2c3d4e5",
        },
        "stageVariables": {},
    }
    if token is not None:
        event["queryStringParameters"] = {"token": token}
    return event


def authorize(token: str | None) -> dict[str, Any]:
    with acting_as("WsAuthorizer"):
        return dict(ws_authorizer.handler(connect_event(token), LambdaContextStub()))


@pytest.fixture
def users(aws: FakeAws, function_env: Any) -> UsersStore:
    function_env("WsAuthorizer")
    store = UsersStore(aws.client("dynamodb"), aws.settings[Setting.USERS_TABLE])
    store.create_user(ALICE.user_id, "+14155552671", now=time.time())
    store.add_device(ALICE.user_id, ALICE.device_id, now=time.time())
    return store


def access_token(**claims: Any) -> str:
    if not claims:
        return tokens.issue_access_token(
            KEYS, ALICE, now=time.time(), ttl_s=Limits().access_token_ttl_s
        )
    now = int(time.time())
    base = {
        "iss": "parley",
        "aud": "parley",
        "sub": ALICE.user_id,
        "did": ALICE.device_id,
        "iat": now,
        "exp": now + 900,
        "typ": "access",
    }
    base.update(claims)
    return jwt.encode(base, "k" * 64, algorithm="HS256")


def test_a_valid_token_is_allowed_with_the_user_and_device_as_context(users: UsersStore) -> None:
    answer = authorize(access_token())
    assert answer == {
        "principalId": ALICE.user_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": METHOD_ARN}
            ],
        },
        "context": {"user_id": ALICE.user_id, "device_id": ALICE.device_id},
    }


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "garbage",
        pytest.param(jwt.encode({"sub": "a" * 32}, "x" * 64, algorithm="HS256"), id="foreign"),
    ],
)
def test_missing_or_foreign_tokens_are_unauthorized(users: UsersStore, token: str | None) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(token)


def test_an_expired_or_tampered_token_is_unauthorized(users: UsersStore) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(access_token(exp=int(time.time()) - 1))
    header, payload, signature = access_token().split(".")
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(f"{header}.{payload}x.{signature}")
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(access_token(typ="refresh"))


def test_a_revoked_device_is_unauthorized(users: UsersStore) -> None:
    token = access_token()
    assert authorize(token)["principalId"] == ALICE.user_id
    users.revoke_device(ALICE.user_id, ALICE.device_id, now=time.time())
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(token)


def test_an_unknown_device_is_unauthorized(users: UsersStore) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(access_token(did="9" * 16))


def test_without_the_signing_secret_no_token_gets_in_and_none_is_called_bad(
    aws: FakeAws, users: UsersStore, function_env: Any
) -> None:
    token = access_token()
    aws.client("secretsmanager").delete_secret(
        SecretId=aws.settings[Setting.SIGNING_SECRET_ARN], ForceDeleteWithoutRecovery=True
    )
    function_env("WsAuthorizer")  # a cold start: nothing cached
    # a failure other than "Unauthorized": API Gateway's 500, not a 401 that would
    # send the app to refresh a token that is fine
    with pytest.raises(ws_authorizer.AuthorizerUnavailable):
        authorize(token)


def test_a_throttled_device_read_fails_the_handshake_without_calling_the_token_bad(
    users: UsersStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = access_token()

    def throttled(*_args: object, **_kwargs: object) -> None:
        raise DependencyUnavailable("user store is throttling")

    monkeypatch.setattr(UsersStore, "device", throttled)
    with pytest.raises(ws_authorizer.AuthorizerUnavailable):
        authorize(token)
    monkeypatch.undo()
    assert authorize(token)["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_the_token_is_never_logged(
    users: UsersStore, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    previous = ws_authorizer.logger.registered_handler.setStream(stream)
    try:
        good, bad = access_token(), access_token(exp=int(time.time()) - 1)
        authorize(good)
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            authorize(bad)
    finally:
        ws_authorizer.logger.registered_handler.setStream(previous)
    logged = stream.getvalue()
    assert "connection authorized" in logged
    assert "connection refused" in logged
    everything = logged + str(capsys.readouterr()) + str([r.__dict__ for r in caplog.records])
    for token in (good, bad):
        for part in token.split("."):
            assert part not in everything
