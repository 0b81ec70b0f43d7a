"""Faults in the service's own dependencies, in-process with each function's exact
environment (moto).

- SNS cannot text: a 503 with Retry-After, no code left usable, the cool-down
  and the hourly allowance untouched, so the person may ask again at once.
- Secrets Manager cannot be read at a cold start: nothing is issued and no
  token is accepted (fail closed), on the HTTP API and the WebSocket authorizer;
  when it is back, service resumes.
- DynamoDB conditional writes decide races: two acks of one envelope at once
  give exactly one delivered receipt (one item, one id); claims of one last prekey give it once;
  the same send twice at once stores one envelope. Each request runs in an
  environment of its own (tests/reliability/atomic.py).

A failing AWS call is made where boto3 meets the network: a `before-call`
hook on the function's own cached client answers with the service's error, as
boto3 reports it after its retries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.handlers import http_api, ws_authorizer
from parley_server.logic import messaging, prekeys
from parley_server.logic import receipts as receipt_cases
from parley_server.logic.ports import Caller
from parley_server.models.frames import AckFrame, PostOutcome, parse_send
from parley_server.store.aws import client
from parley_server.store.connections import ConnectionsStore
from parley_server.store.mailbox import Mailbox
from parley_server.store.prekeys import PrekeysStore
from parley_server.store.ratelimits import RateLimiter
from parley_server.store.users import UsersStore
from tests.conftest import FakeAws
from tests.integration.test_http_harness import Device, call, sign_up, sms_code, with_keys
from tests.integration.ws_harness import Harness, harness
from tests.reliability.atomic import AtomicClient, run_together
from tests.reliability.test_attack_tokens import authorized

PHONE = "+14155552671"
LIMITS = Limits()


@contextmanager
def failing(
    service: str, operation: str, code: str, status: int = 500, *, after: int = 0
) -> Iterator[list[int]]:
    """`operation` of the process's cached `service` client fails with `code` (after
    letting the first `after` calls through)."""
    calls: list[int] = []

    def fail(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        calls.append(1)
        if len(calls) <= after:
            return None
        error = {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse("https://aws.test", status, {}, None), error

    events = client(service).meta.events
    event = f"before-call.{client(service).meta.service_model.service_id.hyphenize()}.{operation}"
    events.register(event, fail)
    try:
        yield calls
    finally:
        events.unregister(event, fail)


def texts() -> list[tuple[str, str]]:
    return list(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values())


# -- SNS ----------------------------------------------------------------------------------


def test_when_sns_cannot_text_the_answer_is_503_and_nothing_is_used_up(
    function_env: Any, aws: FakeAws
) -> None:
    function_env("HttpApi")
    with failing("sns", "Publish", "InternalError") as calls:
        refused = [call("POST", "/v1/auth/otp", body={"phone": PHONE}) for _ in range(6)]

    assert calls  # SNS really was asked
    assert {(a.status, a.code) for a in refused} == {(503, "service_unavailable")}
    assert refused[0].headers["retry-after"] == "1"
    assert texts() == []
    # no code is usable: any guess is "no live code", and spends nothing
    guess = call("POST", "/v1/auth/verify", body={"phone": PHONE, "code": "123456"})
    assert guess.code == "invalid_code"
    assert "attempts_left" not in guess.body["error"]
    # SNS is back: no cool-down is held, and the new code works
    assert call("POST", "/v1/auth/otp", body={"phone": PHONE}).status == 202
    code = sms_code(PHONE)
    assert call("POST", "/v1/auth/verify", body={"phone": PHONE, "code": code}).status == 200


def test_failed_texts_do_not_eat_the_hourly_allowance(
    function_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    function_env("HttpApi")
    start = float(int(time.time()) // 3600 * 3600 + 1)
    clock = {"now": start}
    monkeypatch.setattr(http_api, "_now", lambda: clock["now"])
    with failing("sns", "Publish", "Throttling", status=400):
        for _ in range(LIMITS.otp_hourly_cap):
            assert call("POST", "/v1/auth/otp", body={"phone": PHONE}).status == 503

    for _ in range(LIMITS.otp_hourly_cap):
        assert call("POST", "/v1/auth/otp", body={"phone": PHONE}).status == 202
        clock["now"] += LIMITS.otp_resend_cooldown_s

    assert len(texts()) == LIMITS.otp_hourly_cap


# -- Secrets Manager ------------------------------------------------------------------------


@pytest.fixture
def alice(function_env: Any) -> Device:
    function_env("HttpApi")
    return with_keys(sign_up(PHONE))


def test_without_secrets_manager_a_cold_start_fails_closed_then_recovers(
    alice: Device, function_env: Any
) -> None:
    assert call("POST", "/v1/auth/otp", body={"phone": "+12025550123"}).status == 202
    code = sms_code("+12025550123")
    function_env("HttpApi")  # a cold start: nothing cached

    with failing("secretsmanager", "GetSecretValue", "InternalServiceError"):
        signed_in = call("POST", "/v1/auth/verify", body={"phone": "+12025550123", "code": code})
        counted = call("GET", "/v1/keys/count", token=alice.access_token)
        refreshed = call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token})
        function_env("WsAuthorizer")
        # fails closed, as API Gateway's 500: the token is not called bad
        with pytest.raises(ws_authorizer.AuthorizerUnavailable):
            authorized(alice.access_token)

    for answer in (signed_in, counted, refreshed):
        assert (answer.status, answer.code) == (503, "service_unavailable"), answer.body
    # nothing was used up: the same code and the same refresh token work now
    function_env("HttpApi")
    again = call("POST", "/v1/auth/verify", body={"phone": "+12025550123", "code": code})
    assert again.status == 200
    assert call("GET", "/v1/keys/count", token=alice.access_token).status == 200
    assert (
        call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token}).status == 200
    )
    function_env("WsAuthorizer")
    assert authorized(alice.access_token)


# -- DynamoDB conditional writes under concurrency -------------------------------------------


class RecordingGateway:
    """@connections: records every post (thread-safe); every connection is live."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def post(self, connection_id: str, event: Any) -> PostOutcome:
        with self._lock:
            self.posted.append((connection_id, dict(event)))
        return PostOutcome.DELIVERED


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


def _stores(aws: FakeAws) -> dict[str, Any]:
    """One environment's adapters over a client of its own."""
    ddb = AtomicClient(aws.client("dynamodb"))
    return {
        "directory": UsersStore(ddb, aws.settings[Setting.USERS_TABLE]),
        "mailbox": Mailbox(ddb, aws.settings[Setting.MAILBOX_TABLE]),
        "connections": ConnectionsStore(ddb, aws.settings[Setting.CONNECTIONS_TABLE]),
    }


def test_two_acks_of_one_envelope_at_once_give_exactly_one_delivered_receipt(
    ws: Harness, aws: FakeAws
) -> None:
    alice = ws.connect(ws.user()[0])
    bob = ws.connect(ws.user()[0])
    ws.send(alice, bob.user_id, {bob.device_id: b"once"}, "m1")
    (envelope,) = ws.events(bob, "message")
    assert bob.connection_id is not None
    caller = Caller(bob.user_id, bob.device_id, bob.connection_id)
    gateway = RecordingGateway()

    def ack() -> receipt_cases.AckOutcome:
        return receipt_cases.ack(
            AckFrame((envelope["id"],), frozenset({envelope["id"]})),
            caller,
            now=time.time(),
            limits=LIMITS,
            gateway=gateway,
            **_stores(aws),
        )

    outcomes = run_together([ack, ack])

    assert sorted(o.messages for o in outcomes) == [0, 1]
    assert sorted(len(o.unknown) for o in outcomes) == [0, 1]
    receipts = [item for item in ws.mailbox_items(alice) if item["sk"]["S"].startswith("r#")]
    assert len(receipts) == 1
    # Alice's app sees one receipt (posted live, maybe by both acks: one id)
    posted = [e for _, e in gateway.posted if e["event"] == "receipt"]
    assert {(e["id"], e["status"], tuple(e["ids"])) for e in posted} == {
        (receipts[0]["sk"]["S"], "delivered", ("m1",))
    }
    assert ws.mailbox_items(bob) == []


@pytest.mark.parametrize(
    ("operation", "after"),
    # an ack of several ids deletes them in one BatchWriteItem, after the receipt
    [("BatchWriteItem", 0), ("PutItem", 0), ("BatchGetItem", 0)],
    ids=["the-deletes-fail-after-the-receipt", "the-receipt-cannot-be-stored", "the-read-fails"],
)
def test_an_ack_that_fails_half_way_loses_no_delivered_tick(
    ws: Harness, operation: str, after: int
) -> None:
    alice = ws.connect(ws.user()[0])
    bob = ws.connect(ws.user()[0])
    for client_id in ("m1", "m2", "m3"):
        ws.send(alice, bob.user_id, {bob.device_id: b"x"}, client_id)
    ids = [e["id"] for e in ws.events(bob, "message")]

    ws.function_env("WsAck")
    with failing("dynamodb", operation, "ProvisionedThroughputExceededException", 400, after=after):
        ws.frame(bob, {"action": "ack", "ids": ids, "delivered": ids})
    (refused,) = ws.events(bob, "error")
    assert refused["code"] == "service_unavailable"
    # the app acks again (after a sync gives it the envelopes that still wait)
    waiting = [item["sk"]["S"] for item in ws.mailbox_items(bob)]
    ws.frame(bob, {"action": "ack", "ids": waiting or ids, "delivered": waiting or ids})

    assert ws.mailbox_items(bob) == []
    ticked = {cid for e in ws.events(alice, "receipt") for cid in e["ids"]}
    stored = {v["S"] for item in ws.mailbox_items(alice) for v in item.get("ids", {}).get("L", [])}
    assert ticked | stored == {"m1", "m2", "m3"}


def test_a_receipt_that_cannot_be_posted_does_not_wait_unseen_for_an_online_sender(
    ws: Harness,
) -> None:
    alice = ws.connect(ws.user()[0])
    bob = ws.connect(ws.user()[0])
    for client_id in ("m1", "m2"):
        ws.send(alice, bob.user_id, {bob.device_id: b"x"}, client_id)
    ids = [e["id"] for e in ws.events(bob, "message")]

    ws.function_env("WsAck")
    # Alice's devices are found (the first Query), her connections cannot be (the
    # second): the receipt is stored and cannot be posted to her
    with failing("dynamodb", "Query", "ProvisionedThroughputExceededException", 400, after=1):
        ws.frame(bob, {"action": "ack", "ids": ids, "delivered": ids})
    assert [e["code"] for e in ws.events(bob, "error")] == ["service_unavailable"]
    # the app syncs and acks again, one message at a time this time
    for server_id in ids:
        ws.frame(bob, {"action": "ack", "ids": [server_id], "delivered": [server_id]})

    posted = {e["id"] for e in ws.events(alice, "receipt")}
    waiting = {item["sk"]["S"] for item in ws.mailbox_items(alice)}
    assert waiting <= posted  # nothing in Alice's mailbox that she was not shown
    assert {cid for e in ws.events(alice, "receipt") for cid in e["ids"]} == {"m1", "m2"}
    assert ws.mailbox_items(bob) == []


def test_the_last_one_time_prekey_claimed_many_times_at_once_is_given_once(
    aws: FakeAws, function_env: Any
) -> None:
    function_env("HttpApi")
    victim = with_keys(sign_up(PHONE), otk_ids=range(1))
    claimers = [sign_up(f"+1202555{n:04d}") for n in range(6)]

    def claim(caller: Device) -> Any:
        ddb = AtomicClient(aws.client("dynamodb"))
        return lambda: prekeys.claim_bundle(
            Caller(caller.user_id, caller.device_id),
            victim.user_id,
            prekeys=PrekeysStore(ddb, aws.settings[Setting.PREKEYS_TABLE]),
            users=UsersStore(ddb, aws.settings[Setting.USERS_TABLE]),
            limiter=RateLimiter(ddb, aws.settings[Setting.RATELIMITS_TABLE]),
            limits=LIMITS,
            now=time.time(),
        )

    bundles = run_together([claim(c) for c in claimers])

    given = [b.devices[0].one_time_prekey for b in bundles]
    assert [k.key_id for k in given if k is not None] == [0]
    assert given.count(None) == len(claimers) - 1


def test_one_send_made_twice_at_once_stores_one_envelope(ws: Harness, aws: FakeAws) -> None:
    alice = ws.connect(ws.user()[0])
    bob = ws.connect(ws.user()[0])
    assert alice.connection_id is not None
    frame = parse_send(
        {"id": "twice", "to": bob.user_id, "payloads": {bob.device_id: "b25jZQ=="}},
        max_payload_bytes=LIMITS.max_payload_bytes,
    )
    caller = Caller(alice.user_id, alice.device_id, alice.connection_id)

    class NoPush:
        def notify(self, device: Any) -> bool:
            return False

    def send() -> messaging.SendOutcome:
        stores = _stores(aws)
        return messaging.send(
            frame,
            caller,
            now=time.time(),
            limits=LIMITS,
            gateway=RecordingGateway(),
            pusher=NoPush(),
            limiter=RateLimiter(
                AtomicClient(aws.client("dynamodb")), aws.settings[Setting.RATELIMITS_TABLE]
            ),
            **stores,
        )

    outcomes = run_together([send, send])

    assert sorted((o.stored, o.duplicates) for o in outcomes) == [(0, 1), (1, 0)]
    assert len({o.event["ts"] for o in outcomes}) == 1  # both answer the original's time
    assert len(ws.mailbox_items(bob)) == 1
    assert json.loads(json.dumps(outcomes[0].event))["id"] == "twice"
