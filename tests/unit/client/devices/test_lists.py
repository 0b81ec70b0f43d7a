"""Signed device lists and the linking formats: every rule the verifier holds."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from parley.crypto import IdentityKeyPair
from parley.devices.adv import (
    Details,
    LinkCode,
    account_signature,
    device_signature,
    pairing_hmac,
    verify_account_signature,
    verify_device_signature,
    verify_hmac,
)
from parley.devices.lists import (
    LIST_PREFIX,
    MAX_COMPANIONS,
    DeviceList,
    ListedDevice,
    canonical,
    sign_list,
    verify_list,
)
from parley.errors import DeviceListError, LinkSignatureError, MalformedLinkCode

USER = "a" * 32
PRIMARY_DEV, COMPANION_DEV = "0a" * 8, "0b" * 8


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def primary() -> IdentityKeyPair:
    return IdentityKeyPair.generate()


@pytest.fixture
def companion() -> IdentityKeyPair:
    return IdentityKeyPair.generate()


def two_devices(primary: IdentityKeyPair, companion: IdentityKeyPair) -> DeviceList:
    return sign_list(
        primary,
        USER,
        2,
        [
            ListedDevice(COMPANION_DEV, 1, companion.public_key),
            ListedDevice(PRIMARY_DEV, 0, primary.public_key),
        ],
        1_700_000_000_000,
    )


def signed(signer: IdentityKeyPair, obj: Any, *, raw: bytes | None = None) -> dict[str, str]:
    """A wire list of `obj` (or of exactly `raw`) signed by `signer`."""
    body = raw if raw is not None else canonical(obj)
    return {"body": b64(body), "signature": b64(signer.sign(LIST_PREFIX + body))}


def body_of(primary: IdentityKeyPair, *devices: dict[str, Any], **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "user_id": USER,
        "version": 1,
        "ts": 1,
        "account_identity": b64(primary.public_key),
        "devices": list(devices)
        or [{"device_id": PRIMARY_DEV, "key_index": 0, "identity": b64(primary.public_key)}],
    }
    obj.update(fields)
    return obj


def entry(device_id: str, key_index: int, identity: IdentityKeyPair) -> dict[str, Any]:
    return {"device_id": device_id, "key_index": key_index, "identity": b64(identity.public_key)}


# --- the list's byte format ------------------------------------------------------------


def test_a_signed_list_is_canonical_json_sorted_by_key_index_and_verifies(
    primary: IdentityKeyPair, companion: IdentityKeyPair
) -> None:
    listed = two_devices(primary, companion)
    assert (
        listed.body
        == json.dumps(json.loads(listed.body), sort_keys=True, separators=(",", ":")).encode()
    )
    assert [d.key_index for d in listed.devices] == [0, 1]
    assert listed.primary.identity == primary.public_key
    again = verify_list(listed.wire(), user_id=USER, account_identity=primary.public_key)
    assert again == listed
    assert again.identity_of(COMPANION_DEV) == companion.public_key
    assert again.identity_of("ff" * 8) is None


def test_the_signature_is_over_the_prefixed_body_bytes_as_received(
    primary: IdentityKeyPair,
) -> None:
    # a body with other spacing than canonical JSON still verifies: bytes, not objects
    raw = json.dumps(body_of(primary), indent=1).encode()
    listed = verify_list(signed(primary, None, raw=raw), user_id=USER)
    assert listed.body == raw
    # a signature over the body without the domain prefix does not
    wire = {"body": b64(raw), "signature": b64(primary.sign(raw))}
    with pytest.raises(DeviceListError, match="signature does not verify"):
        verify_list(wire, user_id=USER)


def test_a_bad_signature_is_refused(primary: IdentityKeyPair, companion: IdentityKeyPair) -> None:
    wire = dict(two_devices(primary, companion).wire())
    body = bytearray(base64.b64decode(wire["body"]))
    body[body.index(b'"ts":') + 6] ^= 1  # one changed digit of the timestamp
    wire["body"] = b64(bytes(body))
    with pytest.raises(DeviceListError, match="signature does not verify"):
        verify_list(wire, user_id=USER)


def test_a_list_signed_by_another_key_than_the_account_identity_it_names_is_refused(
    primary: IdentityKeyPair, companion: IdentityKeyPair
) -> None:
    with pytest.raises(DeviceListError, match="signature does not verify"):
        verify_list(signed(companion, body_of(primary)), user_id=USER)


def test_a_list_of_another_account_identity_than_the_pinned_one_is_refused(
    primary: IdentityKeyPair, companion: IdentityKeyPair
) -> None:
    other = sign_list(companion, USER, 5, [ListedDevice(PRIMARY_DEV, 0, companion.public_key)], 1)
    with pytest.raises(DeviceListError, match="pinned account identity"):
        verify_list(other.wire(), user_id=USER, account_identity=primary.public_key)
    # a list signed by the pinned key that names another account identity is refused too
    obj = body_of(primary, account_identity=b64(companion.public_key))
    with pytest.raises(DeviceListError, match="another account identity"):
        verify_list(signed(primary, obj), user_id=USER, account_identity=primary.public_key)


def test_a_list_of_another_user_is_refused(primary: IdentityKeyPair) -> None:
    with pytest.raises(DeviceListError, match="another user"):
        verify_list(signed(primary, body_of(primary)), user_id="b" * 32)


@pytest.mark.parametrize(
    ("devices", "match"),
    [
        (lambda p, c: [entry(PRIMARY_DEV, 0, p), entry(COMPANION_DEV, 0, c)], "repeats a key"),
        (lambda p, c: [entry(PRIMARY_DEV, 0, p), entry(PRIMARY_DEV, 1, c)], "repeats a device"),
        (lambda p, c: [entry(COMPANION_DEV, 1, c)], "no primary"),
        (lambda p, c: [entry(PRIMARY_DEV, 0, c)], "primary is not the account identity"),
        (lambda p, c: [entry(COMPANION_DEV, 1, c), entry(PRIMARY_DEV, 0, p)], "not sorted"),
        (lambda p, c: [entry(PRIMARY_DEV, -1, p)], "bad key index"),
        (lambda p, c: [entry("XYZ", 0, p)], "bad device id"),
        (lambda p, c: [{**entry(PRIMARY_DEV, 0, p), "key_index": True}], "bad key index"),
        (lambda p, c: [{**entry(PRIMARY_DEV, 0, p), "identity": "AAAA"}], "32 bytes"),
        (lambda p, c: ["not an object"], "not an object"),
    ],
)
def test_structure_rules(
    primary: IdentityKeyPair, companion: IdentityKeyPair, devices: Any, match: str
) -> None:
    obj = body_of(primary, *devices(primary, companion))
    with pytest.raises(DeviceListError, match=match):
        verify_list(signed(primary, obj), user_id=USER)


def test_no_devices_and_a_bad_version_are_refused(primary: IdentityKeyPair) -> None:
    with pytest.raises(DeviceListError, match="no devices"):
        verify_list(signed(primary, {**body_of(primary), "devices": []}), user_id=USER)
    for version in (0, -1, "1", 1.5, None):
        with pytest.raises(DeviceListError, match="version"):
            verify_list(signed(primary, body_of(primary, version=version)), user_id=USER)


def test_an_oversized_list_is_refused(primary: IdentityKeyPair) -> None:
    many = [entry(PRIMARY_DEV, 0, primary)] + [
        entry(f"{i:016x}", i, IdentityKeyPair.generate()) for i in range(1, MAX_COMPANIONS + 2)
    ]
    with pytest.raises(DeviceListError, match="at most 5"):
        verify_list(signed(primary, body_of(primary, *many)), user_id=USER)
    # and a body far past any real list is refused before it is parsed
    huge = body_of(primary, padding="x" * 10_000)
    with pytest.raises(DeviceListError, match="too large"):
        verify_list(signed(primary, huge), user_id=USER)


@pytest.mark.parametrize(
    "wire",
    [
        None,
        [],
        {"signature": "AAAA"},
        {"body": "not base64!", "signature": b64(bytes(64))},
        {"body": b64(b"{}"), "signature": "@@@"},
        {"body": b64(b"{}"), "signature": b64(bytes(63))},
        {"body": 5, "signature": b64(bytes(64))},
    ],
)
def test_malformed_base64_or_shape_is_refused(wire: Any) -> None:
    with pytest.raises(DeviceListError):
        verify_list(wire, user_id=USER)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe", b'{"account_identity": 1}'])
def test_malformed_json_is_refused(primary: IdentityKeyPair, body: bytes) -> None:
    with pytest.raises(DeviceListError):
        verify_list(signed(primary, None, raw=body), user_id=USER)


# --- approval, consent and the link code --------------------------------------------


def test_an_approval_verifies_end_to_end_and_each_part_guards_its_bytes(
    primary: IdentityKeyPair, companion: IdentityKeyPair
) -> None:
    secret = bytes(range(16))
    details = Details(USER, COMPANION_DEV, 1, companion.public_key, 1234).to_bytes()
    assert details == canonical(
        {
            "device_id": COMPANION_DEV,
            "identity": b64(companion.public_key),
            "key_index": 1,
            "ts": 1234,
            "user_id": USER,
        }
    )
    account_sig = account_signature(primary, details)
    mac = pairing_hmac(secret, details, account_sig)
    verify_account_signature(primary.public_key, details, account_sig)
    verify_hmac(secret, details, account_sig, mac)
    consent = device_signature(companion, details, account_sig, primary.public_key)
    verify_device_signature(companion.public_key, details, account_sig, primary.public_key, consent)
    assert Details.parse(details) == Details(USER, COMPANION_DEV, 1, companion.public_key, 1234)

    with pytest.raises(LinkSignatureError, match="HMAC"):
        verify_hmac(bytes(16), details, account_sig, mac)  # another secret
    with pytest.raises(LinkSignatureError, match="HMAC"):
        verify_hmac(secret, details + b" ", account_sig, mac)
    with pytest.raises(LinkSignatureError, match="account signature"):
        verify_account_signature(companion.public_key, details, account_sig)
    with pytest.raises(LinkSignatureError, match="account signature"):
        # the account signature is domain-separated from the list's
        verify_account_signature(primary.public_key, details, primary.sign(details))
    with pytest.raises(LinkSignatureError, match="device signature"):
        verify_device_signature(
            companion.public_key, details, account_sig, companion.public_key, consent
        )


@pytest.mark.parametrize(
    "obj",
    [
        {"user_id": "x", "device_id": COMPANION_DEV, "key_index": 1, "identity": "", "ts": 1},
        {"user_id": USER, "device_id": COMPANION_DEV, "key_index": 0, "identity": "", "ts": 1},
        {"user_id": USER, "device_id": COMPANION_DEV, "key_index": 1, "identity": "AA==", "ts": 1},
        {"user_id": USER, "device_id": COMPANION_DEV, "key_index": 1, "identity": 5, "ts": 1},
    ],
)
def test_malformed_details_are_refused(obj: dict[str, Any]) -> None:
    with pytest.raises(LinkSignatureError):
        Details.parse(canonical(obj))


def test_a_link_code_round_trips_in_the_spec_format(companion: IdentityKeyPair) -> None:
    code = LinkCode("c" * 32, COMPANION_DEV, companion.public_key, b"\x01" * 16)
    text = str(code)
    prefix, version, ref, device, identity, secret = text.split(":")
    assert (prefix, version, ref, device) == ("parley-link", "1", "c" * 32, COMPANION_DEV)
    assert "=" not in identity + secret
    assert base64.urlsafe_b64decode(identity + "=") == companion.public_key
    assert base64.urlsafe_b64decode(secret + "==") == b"\x01" * 16
    assert LinkCode.parse(text) == code
    assert LinkCode.parse(f"  {text}\n") == code
    assert "secret" not in repr(code)
    assert secret not in repr(code)


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda t: "hello", "not a Parley link code"),
        (lambda t: t.replace("parley-link", "parley-lnk"), "not a Parley link code"),
        (lambda t: t.replace(":1:", ":2:", 1), "version"),
        (lambda t: t.replace("c" * 32, "C" * 32), "pairing ref"),
        (lambda t: t.replace("c" * 32, "c" * 31), "pairing ref"),
        (lambda t: t.replace(COMPANION_DEV, "0b" * 7), "device id"),
        (lambda t: t + "A", "secret"),
        (lambda t: t[:-1], "secret"),
        (lambda t: t[: t.rindex(":")] + ":" + "A" * 21 + "=", "secret"),
        (lambda t: t.rsplit(":", 2)[0] + ":" + "+" * 43 + ":" + t.rsplit(":", 1)[1], "identity"),
        (lambda t: t + ":extra", "not a Parley link code"),
    ],
)
def test_malformed_link_codes_are_refused_clearly(
    companion: IdentityKeyPair, mangle: Any, match: str
) -> None:
    text = str(LinkCode("c" * 32, COMPANION_DEV, companion.public_key, b"\x01" * 16))
    with pytest.raises(MalformedLinkCode, match=match):
        LinkCode.parse(mangle(text))


def test_a_link_code_is_text() -> None:
    with pytest.raises(MalformedLinkCode):
        LinkCode.parse(None)
