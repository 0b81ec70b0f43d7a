"""Signed device lists and ADV signatures: every rule that refuses one."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from nacl.signing import SigningKey

from parley_server.logic.device_list import (
    ACCOUNT_PREFIX,
    DEVICE_PREFIX,
    LIST_PREFIX,
    read_details,
    read_list,
    verify_account_signature,
    verify_device_signature,
)
from parley_server.models.errors import BadRequest, Conflict, PayloadTooLarge

UID = "a" * 32
PRIMARY = SigningKey(b"\x01" * 32)
IDENTITY = PRIMARY.verify_key.encode()
LAPTOP = SigningKey(b"\x02" * 32)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def device(device_id: str, key_index: int, identity: str) -> dict[str, Any]:
    """One entry of a list's "devices" (`identity` as the wire has it, base64)."""
    return {"device_id": device_id, "key_index": key_index, "identity": identity}


def body(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "user_id": UID,
        "version": 2,
        "ts": 1_700_000_000_000,
        "account_identity": b64(IDENTITY),
        "devices": [
            {"device_id": "0" * 16, "key_index": 0, "identity": b64(IDENTITY)},
            {"device_id": "1" * 16, "key_index": 3, "identity": b64(LAPTOP.verify_key.encode())},
        ],
    }
    obj.update(changes)
    return obj


def signed(raw: bytes, key: SigningKey = PRIMARY, prefix: bytes = LIST_PREFIX) -> tuple[str, str]:
    return b64(raw), b64(key.sign(prefix + raw).signature)


def read(raw: bytes, key: SigningKey = PRIMARY, max_companions: int = 4) -> Any:
    text, signature = signed(raw, key)
    return read_list(
        text, signature, user_id=UID, account_identity=IDENTITY, max_companions=max_companions
    )


def test_a_valid_list_is_read_from_the_exact_bytes_signed() -> None:
    raw = canonical(body())
    listed = read(raw)
    assert listed.version == 2
    assert listed.device_ids == ["0" * 16, "1" * 16]
    assert listed.max_key_index == 3
    assert listed.body == raw
    # not canonical bytes (spaces, another key order) are fine: the bytes are verified
    loose = json.dumps(body(), indent=1).encode()
    assert read(loose).body == loose


def test_a_list_signed_by_another_key_is_refused() -> None:
    with pytest.raises(BadRequest) as refused:
        read(canonical(body()), key=LAPTOP)
    assert refused.value.code == "invalid_signature"


def test_a_signature_over_other_bytes_or_another_prefix_is_refused() -> None:
    raw = canonical(body())
    text, _ = signed(raw)
    _, other = signed(canonical(body(version=3)))
    with pytest.raises(BadRequest, match="signature"):
        read_list(text, other, user_id=UID, account_identity=IDENTITY, max_companions=4)
    _, wrong_purpose = signed(raw, prefix=ACCOUNT_PREFIX)
    with pytest.raises(BadRequest, match="signature"):
        read_list(text, wrong_purpose, user_id=UID, account_identity=IDENTITY, max_companions=4)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"version": "2"}, "version"),
        ({"ts": -1}, "ts"),
        ({"user_id": "b" * 32}, "another account"),
        ({"account_identity": b64(LAPTOP.verify_key.encode())}, "another account identity"),
        ({"devices": []}, "non-empty"),
        ({"extra": 1}, "exactly the fields"),
        (
            {"devices": [device("1" * 16, 1, b64(IDENTITY))]},
            "primary",
        ),
        (
            {
                "devices": [
                    device("0" * 16, 0, b64(IDENTITY)),
                    device("0" * 16, 1, b64(b"\x03" * 32)),
                ]
            },
            "repeats a device id",
        ),
        (
            {
                "devices": [
                    device("0" * 16, 0, b64(IDENTITY)),
                    device("2" * 16, 2, b64(b"\x03" * 32)),
                    device("1" * 16, 1, b64(b"\x04" * 32)),
                ]
            },
            "sorted",
        ),
        (
            {
                "devices": [
                    device("0" * 16, 0, b64(IDENTITY)),
                    device("1" * 16, 0, b64(b"\x03" * 32)),
                ]
            },
            "sorted",
        ),
        (
            {
                "devices": [
                    device("0" * 16, 0, b64(IDENTITY)),
                    device("1" * 16, 1, b64(IDENTITY)),
                ]
            },
            "account identity",
        ),
        (
            {"devices": [device("XYZ", 0, b64(IDENTITY))]},
            "device_id",
        ),
        (
            {"devices": [device("0" * 16, 0, "not base64!")]},
            "base64",
        ),
        (
            {"devices": [device("0" * 16, 0, b64(b"short"))]},
            "32 bytes",
        ),
    ],
)
def test_a_malformed_list_is_refused_with_the_reason(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadRequest, match=problem) as refused:
        read(canonical(body(**changes)))
    assert refused.value.code == "invalid_device_list"


def test_bytes_that_are_not_json_or_not_an_object_are_refused() -> None:
    for raw in (b"\xff\xfe", b"not json", b"[1, 2]"):
        with pytest.raises(BadRequest, match="JSON"):
            read(raw)


def test_too_many_companions_is_a_conflict() -> None:
    devices = [{"device_id": "0" * 16, "key_index": 0, "identity": b64(IDENTITY)}] + [
        {"device_id": f"{n:016x}", "key_index": n, "identity": b64(bytes([n]) * 32)}
        for n in range(1, 6)
    ]
    with pytest.raises(Conflict) as refused:
        read(canonical(body(devices=devices)), max_companions=4)
    assert refused.value.code == "too_many_devices"
    assert read(canonical(body(devices=devices)), max_companions=5).companions == 5


def test_malformed_base64_and_oversized_lists_are_refused() -> None:
    _, signature = signed(canonical(body()))
    with pytest.raises(BadRequest, match="base64"):
        read_list("***", signature, user_id=UID, account_identity=IDENTITY, max_companions=4)
    with pytest.raises(BadRequest, match="64 bytes"):
        read_list(
            b64(canonical(body())),
            b64(b"x" * 10),
            user_id=UID,
            account_identity=IDENTITY,
            max_companions=4,
        )
    huge = canonical(body(ts=1)) + b" " * 5000
    with pytest.raises(PayloadTooLarge):
        read(huge)


def details(**changes: Any) -> bytes:
    obj: dict[str, Any] = {
        "user_id": UID,
        "device_id": "1" * 16,
        "key_index": 1,
        "identity": b64(LAPTOP.verify_key.encode()),
        "ts": 1,
    }
    obj.update(changes)
    return canonical(obj)


def test_the_account_signature_verifies_over_the_details_bytes() -> None:
    raw = details()
    parsed = read_details(b64(raw))
    assert (parsed.device_id, parsed.key_index, parsed.raw) == ("1" * 16, 1, raw)
    good = PRIMARY.sign(ACCOUNT_PREFIX + raw).signature
    verify_account_signature(parsed, good, IDENTITY)
    with pytest.raises(BadRequest) as refused:
        verify_account_signature(parsed, LAPTOP.sign(ACCOUNT_PREFIX + raw).signature, IDENTITY)
    assert refused.value.code == "invalid_signature"
    with pytest.raises(BadRequest):
        verify_account_signature(parsed, PRIMARY.sign(LIST_PREFIX + raw).signature, IDENTITY)


@pytest.mark.parametrize(
    "raw",
    [
        details(key_index=0),  # index 0 is the primary's
        details(user_id="nope"),
        details(device_id="1" * 15),
        details(identity=b64(b"x")),
        canonical({"user_id": UID}),
        b"{",
    ],
)
def test_malformed_details_are_refused(raw: bytes) -> None:
    with pytest.raises(BadRequest) as refused:
        read_details(b64(raw))
    assert refused.value.code == "invalid_details"


def test_the_device_signature_covers_details_account_signature_and_identity() -> None:
    raw = details()
    account_signature = PRIMARY.sign(ACCOUNT_PREFIX + raw).signature
    message = DEVICE_PREFIX + raw + account_signature + IDENTITY
    laptop = LAPTOP.verify_key.encode()
    verify_device_signature(
        raw, account_signature, IDENTITY, LAPTOP.sign(message).signature, laptop
    )
    with pytest.raises(BadRequest, match="device_signature"):
        verify_device_signature(
            raw, account_signature, IDENTITY, PRIMARY.sign(message).signature, laptop
        )
    # signed for another account identity
    other = DEVICE_PREFIX + raw + account_signature + laptop
    with pytest.raises(BadRequest, match="device_signature"):
        verify_device_signature(
            raw, account_signature, IDENTITY, LAPTOP.sign(other).signature, laptop
        )
