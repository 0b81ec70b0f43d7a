from __future__ import annotations

from typing import Any

from parley_server.catalogue import Setting
from parley_server.store.contacts import ContactsStore
from parley_server.store.users import Device, UsersStore
from tests.conftest import FakeAws
from tests.device_lists import list_devices

UID = "a" * 32
OTHER = "b" * 32


def _store(aws: FakeAws) -> UsersStore:
    return UsersStore(aws.client("dynamodb"), aws.settings[Setting.USERS_TABLE])


def _profile(aws: FakeAws, user_id: str) -> dict[str, Any]:
    return dict(
        aws.client("dynamodb").get_item(
            TableName=aws.settings[Setting.USERS_TABLE],
            Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "PROFILE"}},
        )["Item"]
    )


def test_devices_of_an_unknown_user_is_empty(aws: FakeAws) -> None:
    assert _store(aws).devices(UID) == []


def test_devices_lists_active_devices_only(aws: FakeAws) -> None:
    store = _store(aws)
    store.create_user(UID, "+447700900001", now=1.0)
    for did in ("1" * 16, "2" * 16, "3" * 16):
        store.add_device(UID, did, now=1.0)
    store.activate_device(UID, "1" * 16)
    store.activate_device(UID, "2" * 16)
    store.revoke_device(UID, "2" * 16, now=2.0)
    store.set_push(UID, "1" * 16, "fcm", "tok", "arn:aws:sns:us-east-1:1:endpoint/GCM/a/b")
    # no signed device list yet: nothing can be delivered to
    assert store.devices(UID) == []
    list_devices(store, UID, ["1" * 16, "2" * 16, "3" * 16])
    # "3"*16 is still pending (no keys yet), "2"*16 is revoked
    assert store.devices(UID) == [
        Device("1" * 16, "fcm", "arn:aws:sns:us-east-1:1:endpoint/GCM/a/b")
    ]
    assert store.device(UID, "3" * 16) == Device("3" * 16, None, None)
    assert store.device(UID, "2" * 16) is None


def test_a_revocation_keeps_its_reason_for_the_devices_refresh(aws: FakeAws) -> None:
    store = _store(aws)
    store.create_user(UID, "+447700900001", now=1.0)
    moved, removed, kept = "1" * 16, "2" * 16, "3" * 16
    for did in (moved, removed, kept):
        store.add_device(UID, did, now=1.0)
    store.revoke_device(UID, moved, now=2.0, reason="reregistered")
    store.revoke_device(UID, removed, now=2.0)
    assert store.revoked_reason(UID, moved) == "reregistered"
    assert store.revoked_reason(UID, removed) is None  # its owner signed it out
    assert store.revoked_reason(UID, kept) is None  # not signed out at all
    assert store.revoked_reason(UID, "4" * 16) is None  # never was
    assert store.device(UID, moved) is None


def test_a_phone_number_belongs_to_one_user(aws: FakeAws) -> None:
    store = _store(aws)
    assert store.create_user(UID, "+447700900001", now=1.0) == UID
    # a concurrent sign-up with the same phone joins the first account
    assert store.create_user(OTHER, "+447700900001", now=2.0) == UID
    assert store.user_by_phone("+447700900001") == UID
    profile_of_other = aws.client("dynamodb").get_item(
        TableName=aws.settings[Setting.USERS_TABLE],
        Key={"pk": {"S": f"USER#{OTHER}"}, "sk": {"S": "PROFILE"}},
    )
    assert "Item" not in profile_of_other


def test_last_seen_only_moves_forward_and_ignores_unknown_users(aws: FakeAws) -> None:
    store = _store(aws)
    store.create_user(UID, "+447700900001", now=1.0)
    store.record_last_seen(UID, 200.5)
    store.record_last_seen(UID, 100.0)
    assert float(_profile(aws, UID)["last_seen"]["N"]) == 200.5
    store.record_last_seen(OTHER, 300.0)
    assert store.presence_view(OTHER, OTHER) == (None, None, False)


def test_a_saved_contact_counts_one_way(aws: FakeAws) -> None:
    store = _store(aws)
    store.create_user(UID, "+447700900001", now=1.0)
    store.create_user(OTHER, "+447700900002", now=1.0)
    assert store.presence_view(UID, OTHER)[2] is False
    ContactsStore(store._ddb, store._table).save(OTHER, UID, now=5.0)
    assert store.presence_view(UID, OTHER)[2] is True  # OTHER saved UID
    assert store.presence_view(OTHER, UID)[2] is False
