"""Attacks on accounts and devices (issue 15), tried as an attacker would, with real
clients (the SDK) on a local stack of the suites' own; each test asserts what the
victim and their contacts observe.

- someone holding an SMS code for Alice's number, without and with a
  registration lock;
- someone with the service's database: a device inserted behind the service's
  back, a forged device list, a rolled-back one, a substituted link approval;
- pairing abuse: a replayed or expired pairing, a link code whose identity is
  swapped.

The database is written through the stack's moto, as someone with access to the
tables would. Where an attack needs time to pass (a code's resend cool-down, a
PIN's back-off) the one stored timestamp that decides it is moved back instead:
no test sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from parley import (
    AccountMoved,
    DeviceListError,
    DevicesChanged,
    IdentityChanged,
    LinkSignatureError,
    MessageReceived,
    MessageSent,
    MessageState,
    PinBackoff,
    ReceiptUpdate,
    RegistrationLocked,
    SendFailed,
    sign_up,
)
from parley.devices.adv import LinkCode
from parley.errors import AccountGone
from parley.local_sms import code_from_local_sms, sms_count
from parley.models import Account
from parley.profiles import profile_dir
from parley.protocol import IncomingReceipt
from parley_server.config import Limits
from parley_server.logic.device_list import ACCOUNT_PREFIX, HMAC_PREFIX, LIST_PREFIX
from tests.device_lists import approval, device_signature
from tests.e2e.support import (
    WAIT_S,
    client,
    clients,
    endpoints_of,
    expect,
    link_on,
    new_device,
    new_phone,
    spy,
)
from tests.reliability.stack import Stack, http_from, source_address
from tests.reliability.stack import sign_up as sign_up_on_stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

LIMITS = Limits()
PIN = "482916"
WRONG_PIN = "111111"


# -- people, codes and the tables -----------------------------------------------------------


async def texted_code(stack: Stack, phone: str) -> str:
    """A fresh sign-up code for `phone`, asked for from an address of its own (the
    service caps codes per address) and read from the stack's SMS sink."""
    before = await sms_count(stack.sms_url, phone)
    async with (
        http_from(source_address()) as http,
        http.post(stack.http_url + "/v1/auth/otp", json={"phone": phone}) as r,
    ):
        assert r.status == 202, await r.text()
    return await code_from_local_sms(stack.sms_url, phone, after=before)


async def person(
    stack: Stack, home: Path, profile: str, *, phone: str | None = None, pin: str | None = None
) -> Account:
    """Sign-up through the SDK into `profile` (a number of its own unless `phone`)."""
    phone = phone or new_phone()
    code = await texted_code(stack, phone)
    return await sign_up(
        profile,
        phone,
        code,
        endpoints=endpoints_of(stack),
        home=home,
        allow_plaintext=True,
        pin=pin,
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ddb(stack: Stack) -> Any:
    return stack.moto("dynamodb")


def users_table(stack: Stack) -> str:
    return stack.table("Users")


def user_key(user_id: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": sk}}


def stored_list(stack: Stack, user_id: str) -> dict[str, Any]:
    """The account's device-list record (USER#<uid> / DEVICES) as the table holds it."""
    item: dict[str, Any] = ddb(stack).get_item(
        TableName=users_table(stack), Key=user_key(user_id, "DEVICES"), ConsistentRead=True
    )["Item"]
    return item


def insert_device(stack: Stack, user_id: str, *, key_index: int) -> str:
    """A companion device written straight into the tables (device record, identity key
    and signed prekey) and onto the service's own set of listed devices, so the
    service offers it in the account's key bundles. Nobody signed it: its id."""
    device_id = secrets.token_hex(8)
    identity = SigningKey.generate()
    prekey = bytes(PrivateKey.generate().public_key)
    client_ = ddb(stack)
    client_.put_item(
        TableName=users_table(stack),
        Item={
            **user_key(user_id, f"DEVICE#{device_id}"),
            "created_at": {"N": str(int(time.time()))},
            "role": {"S": "companion"},
            "key_index": {"N": str(key_index)},
        },
    )
    device = {"S": f"{user_id}#{device_id}"}
    client_.put_item(
        TableName=stack.table("Prekeys"),
        Item={
            "device": device,
            "sk": {"S": "IDENTITY"},
            "identity_key": {"B": bytes(identity.verify_key)},
        },
    )
    client_.put_item(
        TableName=stack.table("Prekeys"),
        Item={
            "device": device,
            "sk": {"S": "SIGNED"},
            "key_id": {"N": "1"},
            "public_key": {"B": prekey},
            "signature": {"B": identity.sign(prekey).signature},
        },
    )
    client_.update_item(
        TableName=users_table(stack),
        Key=user_key(user_id, "DEVICES"),
        UpdateExpression="ADD listed :d",
        ExpressionAttributeValues={":d": {"SS": [device_id]}},
    )
    return device_id


def device_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "parley.devices"]


async def status_of(http: aiohttp.ClientSession, stack: Stack, token: str) -> int:
    async with http.get(
        stack.http_url + "/v1/devices", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        return r.status


# -- 1. an SMS code, no registration lock: the account moves, visibly ---------------------


async def test_an_sms_code_holder_moves_the_account_visibly_and_gets_nothing_old(
    stack: Stack, tmp_path: Path
) -> None:
    alice = await person(stack, tmp_path, "alice")
    bob_account = await person(stack, tmp_path, "bob")
    laptop = await new_device(stack, tmp_path, alice, "alice-laptop")
    async with client(stack, tmp_path, "alice") as phone:
        phone_events = phone.events()
        await asyncio.wait_for(phone.wait_synced(), WAIT_S)
        await phone.add_contact(bob_account.phone, "Bob")
        await phone.refresh_own_devices()  # done on connecting too; here, surely

        # while the laptop is away: Bob writes to Alice (it waits in the laptop's
        # mailbox too), then goes offline
        async with client(stack, tmp_path, "bob") as bob:
            await asyncio.wait_for(bob.wait_synced(), WAIT_S)
            await bob.add_contact(alice.phone, "Alice")
            await bob.send("Alice", "for alice's devices")
            await expect(
                phone_events, MessageReceived, lambda e: e.message.text == "for alice's devices"
            )
            async with asyncio.timeout(WAIT_S):
                await bob.wait_outbox_empty()
        # Alice's phone writes to Bob, offline: it waits in his mailbox (and its
        # sent-copy in the laptop's), so its delivered tick can only come after the move
        await phone.send("Bob", "from alice's phone")
        async with asyncio.timeout(WAIT_S):
            await phone.wait_outbox_empty()
        assert len(stack.mailbox(alice.user_id, laptop.device_id)) >= 2

        def waiting_for_bob() -> bool:
            keys = mailbox_keys(stack, bob_account.user_id, bob_account.device_id)
            return any(k.startswith("m#") for k in keys)

        assert waiting_for_bob()
        phone_tokens = phone.store.accounts.tokens()
        async with client(stack, tmp_path, "alice-laptop", connect=False) as away:
            laptop_tokens = away.store.accounts.tokens()
        assert phone_tokens is not None
        assert laptop_tokens is not None

        # Mallory has a code for Alice's number
        mallory = await person(stack, tmp_path, "mallory", phone=alice.phone)
        assert mallory.user_id == alice.user_id
        assert mallory.device_id not in {alice.device_id, laptop.device_id}

        # Alice's phone is told at once; neither old device is let in again
        await expect(phone_events, AccountMoved)
        async with aiohttp.ClientSession() as http:
            for tokens in (phone_tokens, laptop_tokens):
                assert await status_of(http, stack, tokens.access_token) == 401
                async with http.post(
                    stack.http_url + "/v1/auth/refresh",
                    json={"refresh_token": tokens.refresh_token},
                ) as r:
                    assert r.status == 401, await r.text()
        # the laptop was away: it hears of the move as it connects (its refresh is
        # refused with the reason), not that its owner signed it out
        async with client(stack, tmp_path, "alice-laptop") as laptop_again:
            await expect(laptop_again.events(), AccountMoved)
            with pytest.raises(AccountGone) as gone:
                await laptop_again.api.refresh()
            assert gone.value.reason == "moved"
            assert "registered on another phone" in str(gone.value)
        # what waited for the old devices stays theirs (ciphertext only they could read,
        # expiring with the mailbox): nothing of it is handed to the new device
        assert len(stack.mailbox(alice.user_id, laptop.device_id)) >= 2
        assert stack.mailbox(alice.user_id, mallory.device_id) == []

    async with clients(stack, tmp_path, "bob", "mallory") as (bob, taker):
        bob_events, taker_events = bob.events(), taker.events()
        # Bob comes back and reads what Alice's old phone wrote; his ack of it ticks
        # nobody: the new phone is not told whom the old one wrote to
        await expect(bob_events, MessageReceived, lambda e: e.message.text == "from alice's phone")
        async with asyncio.timeout(WAIT_S):
            while waiting_for_bob():  # noqa: ASYNC110 (the service raises no event for it)
                await asyncio.sleep(0.05)  # until his ack has been handled
        assert stack.mailbox(alice.user_id, mallory.device_id) == []

        await asyncio.wait_for(taker.wait_synced(), WAIT_S)
        # Bob's client says Alice's account identity changed as he next sends
        await bob.send("Alice", "after the move")
        changed = await expect(
            bob_events, IdentityChanged, lambda e: e.contact.user_id == alice.user_id
        )
        assert changed.device_id is None
        seen = bob.store.contacts.get(alice.user_id)
        assert seen is not None
        assert seen.identity_changed
        # the new owner of the number gets what is sent from now on, and nothing older
        got = await expect(taker_events, MessageReceived)
        assert got.message.text == "after the move"
        later = taker_events.drain()
        assert [e for e in later if isinstance(e, MessageSent | MessageReceived)] == []
        assert [e for e in later if isinstance(e, ReceiptUpdate)] == []

        # Bob reads the conversation, the old phone's message and the new owner's
        # together: the new phone hears of its own, and not of the old one's
        told: list[IncomingReceipt] = spy(taker.engine, "receipt")
        await taker.add_contact(bob_account.phone, "Bob")
        hello = await taker.send("Bob", "hello from the new phone")
        await expect(
            bob_events, MessageReceived, lambda e: e.message.text == "hello from the new phone"
        )
        read = await bob.mark_read("Alice")
        assert {m.text for m in read} >= {"from alice's phone", "hello from the new phone"}
        await expect(taker_events, ReceiptUpdate, lambda e: e.state is MessageState.READ)
        assert [(r.status, r.client_ids) for r in told if r.status == "read"] == [
            ("read", (hello.client_id,))
        ]


# -- 2. an SMS code, with a registration lock: refused, and wrong PINs back off -----------


def move_back(
    stack: Stack, table: str, key: dict[str, Any], attribute: str, seconds: float
) -> None:
    """Move one stored timestamp `seconds` into the past (as if that time had passed)."""
    item = ddb(stack).get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    ddb(stack).update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET #a = :t",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":t": {"N": repr(float(item[attribute]["N"]) - seconds)}},
    )


async def test_with_a_registration_lock_the_code_holder_is_refused_and_wrong_pins_back_off(
    stack: Stack, tmp_path: Path
) -> None:
    alice = await person(stack, tmp_path, "alice")
    await person(stack, tmp_path, "bob")
    async with clients(stack, tmp_path, "alice", "bob") as (phone, bob):
        phone_events, bob_events = phone.events(), bob.events()
        for device in (phone, bob):
            await asyncio.wait_for(device.wait_synced(), WAIT_S)
        await phone.set_registration_lock(PIN)
        await bob.add_contact(alice.phone, "Alice")

        async def take_over(code: str, pin: str | None) -> None:
            await sign_up(
                "mallory",
                alice.phone,
                code,
                endpoints=endpoints_of(stack),
                home=tmp_path,
                allow_plaintext=True,
                pin=pin,
            )

        # no PIN: refused, and the code is not spent (the same code is tried again)
        code = await texted_code(stack, alice.phone)
        with pytest.raises(RegistrationLocked) as locked:
            await take_over(code, None)
        assert (locked.value.status, locked.value.code) == (423, "registration_locked")
        assert (locked.value.attempts_left, locked.value.retry_after) == (
            LIMITS.pin_free_tries,
            None,
        )
        for left in range(LIMITS.pin_free_tries - 1, 0, -1):
            with pytest.raises(RegistrationLocked) as locked:
                await take_over(code, WRONG_PIN)
            assert (locked.value.attempts_left, locked.value.retry_after) == (left, None)

        # that code has had its five checks: a new one (its cool-down passed)
        move_back(stack, stack.table("Otp"), {"phone": {"S": alice.phone}}, "created_at", 60)
        code = await texted_code(stack, alice.phone)
        with pytest.raises(RegistrationLocked) as locked:
            await take_over(code, WRONG_PIN)
        first_wait = LIMITS.pin_backoff_base_s
        assert (locked.value.attempts_left, locked.value.retry_after) == (0, first_wait)
        with pytest.raises(PinBackoff) as waiting:
            await take_over(code, PIN)  # even the right PIN waits
        assert 0 < waiting.value.retry_after <= first_wait
        # the wait over, the next wrong PIN waits twice as long
        move_back(
            stack,
            users_table(stack),
            user_key(alice.user_id, "PROFILE"),
            "pin_last_try",
            first_wait + 1,
        )
        with pytest.raises(RegistrationLocked) as locked:
            await take_over(code, WRONG_PIN)
        assert (locked.value.attempts_left, locked.value.retry_after) == (0, 2 * first_wait)
        with pytest.raises(PinBackoff) as waiting:
            await take_over(code, WRONG_PIN)
        assert first_wait < waiting.value.retry_after <= 2 * first_wait
        assert not profile_dir("mallory", tmp_path).exists()

        # Alice's devices never noticed; Bob's next message reaches her phone alone
        assert [d.device_id for d in await phone.devices()] == [alice.device_id]
        await bob.send("Alice", "still yours")
        got = await expect(phone_events, MessageReceived)
        assert got.message.text == "still yours"
        async with asyncio.timeout(WAIT_S):
            await bob.wait_outbox_empty()
        assert set(bob.store.sessions.for_user(alice.user_id)) == {alice.device_id}
        shown = bob_events.drain()
        assert [e for e in shown if isinstance(e, IdentityChanged | SendFailed)] == []
        assert [e for e in phone_events.drain() if isinstance(e, AccountMoved)] == []


# -- 3. the database: a device inserted behind the service's back, a forged list ----------


async def test_a_device_inserted_in_the_database_gets_nothing_and_the_sender_says_why(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await person(stack, tmp_path, "alice")
    await person(stack, tmp_path, "bob")
    rogue = insert_device(stack, alice.user_id, key_index=1)
    async with client(stack, tmp_path, "bob") as bob:
        bob_events = bob.events()
        await asyncio.wait_for(bob.wait_synced(), WAIT_S)
        await bob.add_contact(alice.phone, "Alice")
        with caplog.at_level(logging.WARNING, logger="parley.devices"):
            sent = await bob.send("Alice", "for alice only")
            # the service insists on its device: the send fails rather than go to it
            failed = await expect(
                bob_events, SendFailed, lambda e: e.message.client_id == sent.client_id
            )
        assert failed.code == "unlisted_device"
        assert f"device {rogue} of {alice.user_id} is not on their signed device list" in (
            device_warnings(caplog)
        )
        assert set(bob.store.sessions.for_user(alice.user_id)) <= {alice.device_id}
    assert stack.mailbox(alice.user_id, rogue) == []


async def test_a_forged_device_list_is_refused_and_nothing_is_sent(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await person(stack, tmp_path, "alice")
    await person(stack, tmp_path, "carol")
    rogue = insert_device(stack, alice.user_id, key_index=1)
    # the stored list rewritten to name the inserted device too; the signature can
    # only be the old one (or made up)
    record = stored_list(stack, alice.user_id)
    body = json.loads(record["list_body"]["B"])
    identity = b64(SigningKey.generate().verify_key.encode())
    body["devices"].append({"device_id": rogue, "key_index": 1, "identity": identity})
    body["version"] += 1
    forged = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ddb(stack).update_item(
        TableName=users_table(stack),
        Key=user_key(alice.user_id, "DEVICES"),
        UpdateExpression="SET list_body = :b, list_version = :v",
        ExpressionAttributeValues={":b": {"B": forged}, ":v": {"N": str(body["version"])}},
    )
    async with client(stack, tmp_path, "carol") as carol:
        await asyncio.wait_for(carol.wait_synced(), WAIT_S)
        await carol.add_contact(alice.phone, "Alice")
        with (
            caplog.at_level(logging.WARNING, logger="parley.devices"),
            pytest.raises(DeviceListError, match="signature"),
        ):
            await carol.send("Alice", "for alice only")
        assert any(
            m.startswith(f"refused the device list of {alice.user_id}")
            for m in device_warnings(caplog)
        )
        assert not carol.store.sessions.for_user(alice.user_id)
        assert carol.store.device_lists.get(alice.user_id) is None
    assert stack.mailbox(alice.user_id, rogue) == []
    assert stack.mailbox(alice.user_id, alice.device_id) == []


# -- 4. the database: a rolled-back list ----------------------------------------------------


def snapshot(stack: Stack, user_id: str, device_id: str) -> list[tuple[str, dict[str, Any]]]:
    """What the tables hold for the account's list and for one of its devices."""
    client_ = ddb(stack)
    users = users_table(stack)
    items = [
        (users, stored_list(stack, user_id)),
        (
            users,
            client_.get_item(TableName=users, Key=user_key(user_id, f"DEVICE#{device_id}"))["Item"],
        ),
    ]
    keys = client_.query(
        TableName=stack.table("Prekeys"),
        KeyConditionExpression="device = :d",
        ExpressionAttributeValues={":d": {"S": f"{user_id}#{device_id}"}},
    )["Items"]
    return items + [(stack.table("Prekeys"), item) for item in keys]


def mailbox_keys(stack: Stack, user_id: str, device_id: str) -> set[str]:
    return {item["sk"]["S"] for item in stack.mailbox(user_id, device_id)}


async def test_a_rolled_back_device_list_is_refused_and_the_unlinked_device_gets_nothing(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await person(stack, tmp_path, "alice")
    await person(stack, tmp_path, "bob")
    laptop = await new_device(stack, tmp_path, alice, "alice-laptop")
    async with client(stack, tmp_path, "bob") as bob:
        bob_events = bob.events()
        await asyncio.wait_for(bob.wait_synced(), WAIT_S)
        await bob.add_contact(alice.phone, "Alice")
        async with client(stack, tmp_path, "alice") as phone:
            phone_events = phone.events()
            await asyncio.wait_for(phone.wait_synced(), WAIT_S)
            await bob.send("Alice", "to both")  # Bob verifies list v2 (phone and laptop)
            await expect(phone_events, MessageReceived, lambda e: e.message.text == "to both")
            async with asyncio.timeout(WAIT_S):
                await bob.wait_outbox_empty()
            assert set(bob.store.sessions.for_user(alice.user_id)) == {
                alice.device_id,
                laptop.device_id,
            }
            before = snapshot(stack, alice.user_id, laptop.device_id)
            waiting = mailbox_keys(stack, alice.user_id, laptop.device_id)  # "to both"
            assert int(before[0][1]["list_version"]["N"]) == 2

            await phone.unlink_device(laptop.device_id)  # list v3: the phone alone
            await bob.send("Alice", "to your phone")
            # the service says the laptop is gone: Bob verifies the list without it
            changed = await expect(bob_events, DevicesChanged)
            assert (changed.added, changed.removed) == ((), (laptop.device_id,))
            await expect(phone_events, MessageReceived, lambda e: e.message.text == "to your phone")
            async with asyncio.timeout(WAIT_S):
                await bob.wait_outbox_empty()
            assert mailbox_keys(stack, alice.user_id, laptop.device_id) == waiting

        # the service serves list v2 again, with the laptop's records and keys back
        # (Alice's phone is away: what is logged below is Bob's)
        for table, item in before:
            ddb(stack).put_item(TableName=table, Item=item)
        with caplog.at_level(logging.WARNING, logger="parley.devices"):
            sent = await bob.send("Alice", "not for the laptop")
            failed = await expect(
                bob_events, SendFailed, lambda e: e.message.client_id == sent.client_id
            )
        assert failed.message.text == "not for the laptop"
        assert (
            f"refused the device list of {alice.user_id}: device list version 2 is older"
            " than version 3 already seen (a rollback)" in device_warnings(caplog)
        )
        listed = bob.engine.sealer.verified_list(alice.user_id)
        assert listed is not None
        assert listed.version == 3
        assert mailbox_keys(stack, alice.user_id, laptop.device_id) == waiting


# -- 5. pairing abuse -----------------------------------------------------------------------


async def start_pairing(
    http: aiohttp.ClientSession, stack: Stack, companion: SigningKey
) -> dict[str, Any]:
    async with http.post(
        stack.http_url + "/v1/devices/pairings",
        json={"identity_key": b64(companion.verify_key.encode())},
    ) as r:
        assert r.status == 201, await r.text()
        started: dict[str, Any] = await r.json()
    return started


async def current_list(
    http: aiohttp.ClientSession, stack: Stack, auth: dict[str, str]
) -> dict[str, Any]:
    async with http.get(stack.http_url + "/v1/devices", headers=auth) as r:
        assert r.status == 200, await r.text()
        answer: dict[str, Any] = await r.json()
    return answer


async def pairing_step(
    http: aiohttp.ClientSession,
    stack: Stack,
    pairing: dict[str, Any],
    step: str,
    body: dict[str, Any],
    auth: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """POST /v1/devices/pairings/{ref}/{step}: the status and the answer (its JSON,
    or its text when it is not JSON)."""
    url = f"{stack.http_url}/v1/devices/pairings/{pairing['ref']}/{step}"
    async with http.post(url, json=body, headers=auth) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.text()


def key_bundle(identity: SigningKey) -> dict[str, Any]:
    prekey = bytes(PrivateKey.generate().public_key)
    return {
        "identity_key": b64(identity.verify_key.encode()),
        "signed_prekey": {
            "key_id": 1,
            "public_key": b64(prekey),
            "signature": b64(identity.sign(prekey).signature),
        },
        "one_time_prekeys": [],
    }


async def test_a_pairing_links_one_device_once_and_not_after_it_expires(stack: Stack) -> None:
    alice = await sign_up_on_stack(stack)
    async with http_from(source_address()) as http:
        laptop = SigningKey.generate()
        started = await start_pairing(http, stack, laptop)
        current = (await current_list(http, stack, alice.auth))["device_list"]
        request, details, account_signature = approval(
            alice.identity, alice.user_id, current, started["device_id"], laptop
        )
        status, answer = await pairing_step(http, stack, started, "approve", request, alice.auth)
        assert status == 204, answer
        done = {
            "claim": started["claim"],
            "device_signature": device_signature(
                laptop, details, account_signature, alice.identity
            ),
            "keys": key_bundle(laptop),
        }
        status, answer = await pairing_step(http, stack, started, "complete", done)
        assert status == 200, answer
        # the same completion again (a replay): refused, no second device
        status, answer = await pairing_step(http, stack, started, "complete", done)
        assert status == 409, answer
        assert answer["error"]["code"] == "pairing_used"
        status, answer = await pairing_step(http, stack, started, "approve", request, alice.auth)
        assert status in (404, 409), answer
        listed = await current_list(http, stack, alice.auth)
        assert sorted(d["device_id"] for d in listed["devices"]) == sorted(
            [alice.device_id, started["device_id"]]
        )

        # a pairing whose time is up (written as the table's sweep has not yet removed it)
        tablet = SigningKey.generate()
        late = await start_pairing(http, stack, tablet)
        ddb(stack).update_item(
            TableName=users_table(stack),
            Key={"pk": {"S": f"PAIRING#{late['ref']}"}, "sk": {"S": "PAIRING"}},
            UpdateExpression="SET expires_at = :t",
            ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 1)}},
        )
        current = listed["device_list"]
        request, details, account_signature = approval(
            alice.identity, alice.user_id, current, late["device_id"], tablet
        )
        status, answer = await pairing_step(http, stack, late, "approve", request, alice.auth)
        assert status == 404, answer
        status, answer = await pairing_step(http, stack, late, "status", {"claim": late["claim"]})
        assert status == 404, answer
        after = await current_list(http, stack, alice.auth)
        assert after["device_list"] == current
        assert len(after["devices"]) == 2


async def test_an_approval_for_a_swapped_identity_is_refused_by_the_service(stack: Stack) -> None:
    alice = await sign_up_on_stack(stack)
    async with http_from(source_address()) as http:
        laptop = SigningKey.generate()
        started = await start_pairing(http, stack, laptop)
        current = (await current_list(http, stack, alice.auth))["device_list"]
        # the code Alice scanned carried the pairing's device id with another identity
        mallory = SigningKey.generate()
        request, _, _ = approval(
            alice.identity, alice.user_id, current, started["device_id"], mallory
        )
        status, answer = await pairing_step(http, stack, started, "approve", request, alice.auth)
        assert status == 409, answer
        assert answer["error"]["code"] == "pairing_mismatch"
        claim = {"claim": started["claim"]}
        status, answer = await pairing_step(http, stack, started, "status", claim)
        assert status == 200, answer
        assert answer == {"state": "pending"}
        after = await current_list(http, stack, alice.auth)
        assert after["device_list"] == current
        assert [d["device_id"] for d in after["devices"]] == [alice.device_id]


async def test_a_new_device_refuses_an_approval_the_service_substituted(
    stack: Stack, tmp_path: Path
) -> None:
    # Mallory (with the database) would have Alice's new laptop join Mallory's account:
    # her approval is genuine in every part but the HMAC, which needs the code's secret
    mallory = await sign_up_on_stack(stack)
    codes: asyncio.Queue[str] = asyncio.Queue()
    linking = asyncio.create_task(
        link_on(stack, tmp_path, "alice-laptop", codes.put_nowait, poll_interval=0.2)
    )
    try:
        code = LinkCode.parse(await asyncio.wait_for(codes.get(), WAIT_S))
        details = json.dumps(
            {
                "user_id": mallory.user_id,
                "device_id": code.device_id,
                "key_index": 1,
                "identity": b64(code.identity),
                "ts": int(time.time() * 1000),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        signature = mallory.identity.sign(ACCOUNT_PREFIX + details).signature
        guessed = hmac.new(os.urandom(16), HMAC_PREFIX + details + signature, hashlib.sha256)
        body = stored_list(stack, mallory.user_id)["list_body"]["B"]
        ddb(stack).update_item(
            TableName=users_table(stack),
            Key={"pk": {"S": f"PAIRING#{code.ref}"}, "sk": {"S": "PAIRING"}},
            UpdateExpression="SET #s = :s, user_id = :u, key_index = :k, details = :d,"
            " account_signature = :a, hmac = :h, list_version = :v, list_body = :b,"
            " list_signature = :ls",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={
                ":s": {"S": "approved"},
                ":u": {"S": mallory.user_id},
                ":k": {"N": "1"},
                ":d": {"B": details},
                ":a": {"B": signature},
                ":h": {"B": guessed.digest()},
                ":v": {"N": "2"},
                ":b": {"B": body},
                ":ls": {"B": mallory.identity.sign(LIST_PREFIX + body).signature},
            },
        )
        with pytest.raises(LinkSignatureError):
            await asyncio.wait_for(linking, WAIT_S)
    finally:
        linking.cancel()
    assert not profile_dir("alice-laptop", tmp_path).exists()
    async with http_from(source_address()) as http:
        listed = await current_list(http, stack, mallory.auth)
    assert [d["device_id"] for d in listed["devices"]] == [mallory.device_id]
