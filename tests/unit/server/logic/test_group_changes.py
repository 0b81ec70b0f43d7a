"""Signed group changes (logic/group_changes.py): every rule that refuses one, each
beside a change the rule lets through, so that dropping a rule fails a test."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from nacl.signing import SigningKey

from parley_server.logic.group_changes import (
    PREFIX,
    canonical,
    change_hash,
    read_change,
    service_leave,
    verify,
)
from parley_server.models.errors import BadRequest, PayloadTooLarge
from parley_server.models.groups import MAX_CHANGE_BYTES, MAX_IDS_PER_REQUEST

GID = "9" * 32
A, B, C, D = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)
DEVICE = "0123456789abcdef"
KEY = SigningKey(b"\x07" * 32)
OTHER = SigningKey(b"\x08" * 32)
HEAD = hashlib.sha256(b"the head").digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# a well-formed change of each kind, by A's device
GOOD: dict[str, dict[str, Any]] = {
    "create": {"seq": 1, "prev": "", "name": "Climbing", "members": [B, C]},
    "add": {"members": [C, D]},
    "remove": {"members": [B]},
    "leave": {},
    "promote": {"members": [B]},
    "dismiss": {"members": [B]},
    # longest-standing first (not sorted): C joined before A
    "vouch": {"members": [C, A, B], "admins": [C, A]},
}


def obj(base: str, **changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "v": 1,
        "group_id": GID,
        "seq": 5,
        "prev": b64(HEAD),
        "at": 1_800_000_000_000,
        "author": A,
        "device": DEVICE,
        "kind": base,
        "name": "",
        "members": [],
        "admins": [],
    }
    found.update(GOOD[base])
    found.update(changes)
    return found


def wire(body: bytes, key: SigningKey = KEY) -> tuple[str, str]:
    return b64(body), b64(key.sign(PREFIX + body).signature)


def read(base: str, **changes: Any) -> Any:
    return read_change(*wire(canonical(obj(base, **changes))))


def refused(body: bytes | tuple[str, str], field: str) -> BadRequest:
    args = wire(body) if isinstance(body, bytes) else body
    with pytest.raises(BadRequest) as caught:
        read_change(*args)
    assert not isinstance(caught.value, PayloadTooLarge)
    assert caught.value.code == "invalid_group_change"
    assert caught.value.details["field"] == field, caught.value.message
    return caught.value


def refused_obj(base: str, field: str, **changes: Any) -> BadRequest:
    return refused(canonical(obj(base, **changes)), field)


# -- what is accepted -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", GOOD)
def test_a_well_formed_change_of_each_kind_is_read_with_every_field(kind: str) -> None:
    body = canonical(obj(kind))

    change = read_change(*wire(body))

    assert change.kind == kind
    assert (change.group_id, change.author, change.device) == (GID, A, DEVICE)
    assert change.seq == (1 if kind == "create" else 5)
    assert change.prev == (b"" if kind == "create" else HEAD)
    assert change.at == 1_800_000_000_000
    assert list(change.members) == GOOD[kind].get("members", [])
    assert list(change.admins) == GOOD[kind].get("admins", [])
    assert change.body == body
    assert change.signature == KEY.sign(PREFIX + body).signature
    assert change.hash == hashlib.sha256(PREFIX + body).digest() == change_hash(body)


def test_the_first_change_of_a_legacy_chain_may_have_no_prev() -> None:
    assert read("vouch", prev="").prev == b""
    assert read("add", prev="").prev == b""


def test_a_create_may_name_no_other_member_and_its_name_is_kept_trimmed() -> None:
    change = read("create", name="  Climbing  ", members=[])

    assert change.members == ()
    assert change.name == "Climbing"


def test_a_change_may_name_the_most_ids_a_transaction_holds() -> None:
    ids = [f"{n:032x}" for n in range(1, MAX_IDS_PER_REQUEST + 1)]

    assert len(read("add", members=ids).members) == MAX_IDS_PER_REQUEST
    assert len(read("create", members=ids).members) == MAX_IDS_PER_REQUEST


def test_a_change_of_almost_the_largest_size_is_read() -> None:
    ids = [f"{n:032x}" for n in range(1, 1800)]  # a vouch for ~1,800 members: ~62 KiB
    body = canonical(obj("vouch", members=ids, admins=ids[:1]))
    assert len(body) <= MAX_CHANGE_BYTES

    assert len(read_change(*wire(body)).members) == len(ids)


def test_a_name_with_letters_beyond_ascii_is_read_in_its_escaped_canonical_form() -> None:
    body = canonical(obj("create", name="Café ☕"))
    assert b"\\u00e9" in body

    assert read_change(*wire(body)).name == "Café ☕"


# -- the wire form ----------------------------------------------------------------------


def test_a_body_that_is_not_base64_is_refused() -> None:
    _, signature = wire(canonical(obj("leave")))
    refused(("not base64!", signature), "change.body")


def test_a_body_without_its_base64_padding_is_refused() -> None:
    # a time whose body's length is not a multiple of 3: its base64 ends in padding
    at = next(n for n in range(10) if len(canonical(obj("leave", at=n))) % 3)
    body, signature = wire(canonical(obj("leave", at=at)))
    assert body.endswith("=")
    assert read_change(body, signature).at == at
    refused((body.rstrip("="), signature), "change.body")


def _loose(text: str) -> str:
    """The same bytes in base64 whose unused bits before the padding are not zero (a
    decoder takes it; it is not the one canonical form)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    stem = text.rstrip("=")
    last = alphabet[alphabet.index(stem[-1]) | 1]
    loose = stem[:-1] + last + "=" * (len(text) - len(stem))
    assert loose != text
    assert base64.b64decode(loose) == base64.b64decode(text)
    return loose


def test_base64_that_is_not_in_its_canonical_form_is_refused() -> None:
    at = next(n for n in range(10) if len(canonical(obj("leave", at=n))) % 3)
    body, signature = wire(canonical(obj("leave", at=at)))

    refused((_loose(body), signature), "change.body")
    refused_obj("leave", "change.prev", prev=_loose(b64(HEAD)))


def test_a_signature_that_is_not_base64_or_not_64_bytes_is_refused() -> None:
    body, signature = wire(canonical(obj("leave")))
    raw = base64.b64decode(signature)

    refused((body, "%%%"), "change.signature")
    refused((body, b64(raw[:63])), "change.signature")
    refused((body, b64(raw + b"\x00")), "change.signature")


def test_a_body_larger_than_64_kib_is_413() -> None:
    ids = [f"{n:032x}" for n in range(1, 1900)]
    body = canonical(obj("vouch", members=ids, admins=ids[:1]))
    assert len(body) > MAX_CHANGE_BYTES

    with pytest.raises(PayloadTooLarge) as caught:
        read_change(*wire(body))

    assert caught.value.details["limit"] == MAX_CHANGE_BYTES


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe{}", b"{not json", b"[1, 2]", b'"a change"', b"null"],
    ids=["not-utf8", "not-json", "array", "string", "null"],
)
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    refused(body, "change.body")


def test_a_body_missing_a_field_or_with_one_more_is_refused() -> None:
    missing = obj("leave")
    del missing["at"]

    refused(canonical(missing), "change.body")
    refused(canonical({**obj("leave"), "extra": 1}), "change.body")


def test_a_body_that_is_not_canonical_json_is_refused() -> None:
    good = obj("leave")
    spaced = json.dumps(good, sort_keys=True).encode()
    unsorted = json.dumps(dict(reversed(list(good.items()))), separators=(",", ":")).encode()
    unescaped = json.dumps(
        obj("create", name="Café"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    # the same key twice: parsers disagree on which one counts
    doubled = canonical(good)[:-1] + b',"kind":"leave"}'

    for body in (spaced, unsorted, unescaped, doubled):
        refused(body, "change.body")


def test_a_body_nested_as_deep_as_json_goes_is_refused_not_a_crash() -> None:
    depth = 30_000  # deeper than any parser's recursion: a 400, never a 500
    members = "[" * depth + "]" * depth
    body = canonical(obj("leave"))
    body = body.replace(b'"members":[]', b'"members":' + members.encode())

    refused(body, "change.body")


# -- each field -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [2, 0, True, 1.0, "1", None])
def test_v_must_be_the_integer_1(value: Any) -> None:
    refused_obj("leave", "change.v", v=value)


@pytest.mark.parametrize("value", ["9" * 31, "9" * 33, "G" * 32, "A" * 32, 7, None])
def test_the_group_id_must_be_32_lowercase_hex(value: Any) -> None:
    refused_obj("leave", "change.group_id", group_id=value)


@pytest.mark.parametrize("value", [0, -1, "5", True, 5.0, None, 2**53 + 1])
def test_seq_must_be_a_positive_integer(value: Any) -> None:
    refused_obj("leave", "change.seq", seq=value)


@pytest.mark.parametrize("value", [-1, "1", True, 1.5, None])
def test_at_must_be_a_whole_number_of_ms(value: Any) -> None:
    refused_obj("leave", "change.at", at=value)


def test_at_may_be_zero() -> None:
    assert read("leave", at=0).at == 0


@pytest.mark.parametrize(
    "value",
    [None, 0, "not base64!", b64(HEAD[:31]), b64(HEAD + b"\x00"), b64(HEAD).rstrip("=")],
    ids=["null", "number", "not-base64", "31-bytes", "33-bytes", "no-padding"],
)
def test_prev_must_be_empty_or_the_base64_of_a_hash(value: Any) -> None:
    refused_obj("leave", "change.prev", prev=value)


@pytest.mark.parametrize("value", ["a" * 31, "A" * 32, "", 1, None])
def test_the_author_must_be_a_user_id(value: Any) -> None:
    refused_obj("leave", "change.author", author=value)


@pytest.mark.parametrize("value", ["", "0123456789ABCDEF", "0" * 15, "0" * 17, None])
def test_the_device_must_be_a_device_id(value: Any) -> None:
    # "" is the service's own entries' device: never a change a device sends
    refused_obj("leave", "change.device", device=value)


@pytest.mark.parametrize("value", ["rename", "Add", "", None, 1])
def test_the_kind_must_be_one_of_the_seven(value: Any) -> None:
    refused_obj("leave", "change.kind", kind=value)


def test_name_must_be_a_string() -> None:
    refused_obj("create", "change.name", name=None)
    refused_obj("leave", "change.name", name=7)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("members", "b" * 32),
        ("members", [B.upper()]),
        ("members", [B, 7]),
        ("members", None),
        ("admins", "a" * 32),
        ("admins", [A[:31]]),
    ],
)
def test_members_and_admins_must_be_lists_of_user_ids(field: str, value: Any) -> None:
    refused_obj("vouch", f"change.{field}", **{field: value})


def test_a_user_named_twice_is_refused() -> None:
    refused_obj("vouch", "change.members", members=[A, B, B])
    refused_obj("vouch", "change.admins", members=[A, B], admins=[A, A])


# -- each kind ------------------------------------------------------------------------------


def test_a_create_is_the_first_change_of_its_chain() -> None:
    refused_obj("create", "change.seq", seq=2)
    refused_obj("create", "change.prev", prev=b64(HEAD))


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * 101, "at most 100"),
        ("a\nb", "control characters"),
        ("a\u2028b", "control characters"),
        ("a\ud800b", "not valid Unicode"),
    ],
)
def test_a_create_has_a_group_name_by_the_usual_rules(name: str, problem: str) -> None:
    assert problem in refused_obj("create", "change.name", name=name).message


def test_a_create_of_100_characters_is_fine() -> None:
    assert read("create", name="x" * 100).name == "x" * 100


@pytest.mark.parametrize("kind", ["add", "remove", "leave", "promote", "dismiss", "vouch"])
def test_only_a_create_has_a_name(kind: str) -> None:
    refused_obj(kind, "change.name", name="Climbing")


@pytest.mark.parametrize("kind", ["create", "add", "remove", "leave", "promote", "dismiss"])
def test_only_a_vouch_names_admins(kind: str) -> None:
    refused_obj(kind, "change.admins", admins=[A])


@pytest.mark.parametrize("kind", ["create", "add"])
def test_the_members_of_a_create_or_add_are_sorted_and_not_the_author(kind: str) -> None:
    refused_obj(kind, "change.members", members=[C, B])
    refused_obj(kind, "change.members", members=[A, B])


def test_an_add_names_someone() -> None:
    refused_obj("add", "change.members", members=[])


@pytest.mark.parametrize("kind", ["create", "add"])
def test_a_change_naming_more_ids_than_a_transaction_holds_is_413(kind: str) -> None:
    ids = [f"{n:032x}" for n in range(1, MAX_IDS_PER_REQUEST + 2)]

    with pytest.raises(PayloadTooLarge) as caught:
        read(kind, members=ids)

    assert caught.value.details == {"field": "change.members", "limit": MAX_IDS_PER_REQUEST}


@pytest.mark.parametrize("kind", ["remove", "promote", "dismiss"])
def test_a_remove_promote_or_dismiss_names_exactly_one_other_member(kind: str) -> None:
    refused_obj(kind, "change.members", members=[])
    refused_obj(kind, "change.members", members=[B, C])
    error = refused_obj(kind, "change.members", members=[A])
    assert ("leave instead" in error.message) == (kind == "remove")


def test_a_leave_names_nobody() -> None:
    refused_obj("leave", "change.members", members=[B])


def test_a_vouch_names_every_member_and_every_admin_in_the_members_order() -> None:
    refused_obj("vouch", "change.members", members=[], admins=[])
    refused_obj("vouch", "change.admins", admins=[])
    refused_obj("vouch", "change.admins", admins=[C, D])  # D is no member
    refused_obj("vouch", "change.admins", admins=[A, C])  # C comes first in members


def test_the_target_is_the_one_member_a_remove_promote_or_dismiss_names() -> None:
    assert read("remove").target == B
    with pytest.raises(ValueError, match="no single member"):
        _ = read("add").target


# -- the signature --------------------------------------------------------------------------


def test_a_change_verifies_under_its_signers_key_only() -> None:
    change = read("add")

    verify(change, KEY.verify_key.encode())
    with pytest.raises(BadRequest) as caught:
        verify(change, OTHER.verify_key.encode())

    assert caught.value.code == "invalid_signature"
    assert caught.value.details["field"] == "change.signature"


def test_a_signature_without_the_prefix_or_over_other_bytes_is_refused() -> None:
    body = canonical(obj("add"))
    bare = read_change(b64(body), b64(KEY.sign(body).signature))
    other = canonical(obj("add", members=[D]))
    moved = read_change(b64(body), b64(KEY.sign(PREFIX + other).signature))

    for change in (bare, moved):
        with pytest.raises(BadRequest) as caught:
            verify(change, KEY.verify_key.encode())
        assert caught.value.code == "invalid_signature"


def test_a_key_that_is_not_32_bytes_verifies_nothing() -> None:
    with pytest.raises(BadRequest) as caught:
        verify(read("add"), b"\x01" * 31)

    assert caught.value.code == "invalid_signature"


# -- the service's own leave ----------------------------------------------------------------


def test_the_services_leave_is_a_canonical_change_with_no_device() -> None:
    body = service_leave(GID, B, seq=7, prev=HEAD, at=1_800_000_000_123)

    assert json.loads(body) == {
        "v": 1,
        "group_id": GID,
        "seq": 7,
        "prev": b64(HEAD),
        "at": 1_800_000_000_123,
        "author": B,
        "device": "",
        "kind": "leave",
        "name": "",
        "members": [],
        "admins": [],
    }
    assert canonical(json.loads(body)) == body
    # it reads as any leave but for its device, which no device may send
    signature = b64(KEY.sign(PREFIX + body).signature)
    refused((b64(body), signature), "change.device")
