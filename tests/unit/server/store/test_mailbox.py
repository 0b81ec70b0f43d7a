from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from parley_server.catalogue import Setting
from parley_server.models.errors import DependencyUnavailable
from parley_server.models.frames import MessageEnvelope, PostOutcome, ReceiptEnvelope, make_ord
from parley_server.store.mailbox import Mailbox
from parley_server.store.management import ConnectionsApi
from tests.conftest import FakeAws

BOB, BOB_DEV = "b" * 32, "1" * 16
NOW = 1_800_000_000.0


def mailbox(aws: FakeAws) -> Mailbox:
    return Mailbox(aws.client("dynamodb"), aws.settings[Setting.MAILBOX_TABLE])


def message(sender: str, client_id: str, at: float, *, ttl: float = 3600) -> MessageEnvelope:
    return MessageEnvelope(
        BOB,
        BOB_DEV,
        sender,
        "2" * 16,
        client_id,
        b"\x00body",
        make_ord(at, "00000000"),
        int(at + ttl),
    )


def test_pages_follow_acceptance_time_not_sender_or_id(aws: FakeAws) -> None:
    box = mailbox(aws)
    # by sort key (sender first) these would come second, third, first
    box.put(message("f" * 32, "first", NOW), now=NOW)
    box.put(message("0" * 32, "second", NOW + 1), now=NOW)
    box.put(message("9" * 32, "third", NOW + 2), now=NOW)
    page = box.page(BOB, BOB_DEV, after=None, limit=10, now=NOW)
    assert [e.event()["client_id"] for e in page.envelopes] == ["first", "second", "third"]


def test_a_page_skips_expired_items_and_keeps_reading_to_fill_itself(aws: FakeAws) -> None:
    box = mailbox(aws)
    for i in range(4):
        box.put(message("a" * 32, f"old{i}", NOW + i, ttl=10), now=NOW)
    for i in range(3):
        box.put(message("a" * 32, f"new{i}", NOW + 10 + i, ttl=3600), now=NOW)

    page = box.page(BOB, BOB_DEV, after=None, limit=2, now=NOW + 100)
    rest = box.page(BOB, BOB_DEV, after=page.next, limit=2, now=NOW + 100)

    assert [e.event()["client_id"] for e in page.envelopes] == ["new0", "new1"]
    assert page.next is not None
    assert [e.event()["client_id"] for e in rest.envelopes] == ["new2"]


def test_envelopes_round_trip_with_everything_they_carry(aws: FakeAws) -> None:
    box = mailbox(aws)
    sent = message("a" * 32, "m1", NOW)
    receipt = ReceiptEnvelope(
        BOB, BOB_DEV, "c" * 32, "3" * 16, "read", ("m1", "m2"), make_ord(NOW, "0"), int(NOW) + 60
    )
    box.put(sent, now=NOW)
    box.put(receipt, now=NOW)
    assert box.delete(BOB, BOB_DEV, sent.server_id, now=NOW) == sent
    assert box.delete(BOB, BOB_DEV, receipt.server_id, now=NOW) == receipt
    assert box.delete(BOB, BOB_DEV, sent.server_id, now=NOW) is None


def test_a_pending_duplicate_put_returns_the_original(aws: FakeAws) -> None:
    box = mailbox(aws)
    original = message("a" * 32, "m1", NOW)
    assert box.put(original, now=NOW) is None
    assert box.put(message("a" * 32, "m1", NOW + 5), now=NOW + 5) == original


def test_mailbox_failures_are_dependency_errors() -> None:
    ddb = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(ddb) as stub:
        stub.add_client_error(
            "delete_item", "ProvisionedThroughputExceededException", http_status_code=400
        )
        with pytest.raises(DependencyUnavailable):
            Mailbox(ddb, "t").delete(BOB, BOB_DEV, "m#x", now=NOW)


def _management() -> object:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url="https://abc.execute-api.us-east-1.amazonaws.com/prod",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def test_post_reports_delivered_gone_and_failed() -> None:
    client = _management()
    api = ConnectionsApi(client)
    with Stubber(client) as stub:
        stub.add_response(
            "post_to_connection", {}, {"ConnectionId": "c1=", "Data": b'{"event":"sent","id":"x"}'}
        )
        stub.add_client_error("post_to_connection", "GoneException", http_status_code=410)
        stub.add_client_error("post_to_connection", "LimitExceededException", http_status_code=429)
        assert api.post("c1=", {"event": "sent", "id": "x"}) is PostOutcome.DELIVERED
        assert api.post("c2=", {"event": "sent"}) is PostOutcome.GONE
        assert api.post("c3=", {"event": "sent"}) is PostOutcome.FAILED
