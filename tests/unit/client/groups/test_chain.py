"""Signed group changes: the bytes signed, the entries read, and the state they fold
into (who is verified, who is a trusted admin, the heir rule, forks and rollbacks)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from parley.crypto import IdentityKeyPair
from parley.groups import chain
from parley.groups.chain import ChainError, ChainState, Entry, Kind

GID = "0f" * 16
A, B, C, D, E = ("a" * 32, "b" * 32, "c" * 32, "d" * 32, "e" * 32)
DEV = "d1" * 8
KEY = IdentityKeyPair.generate()


def entry(
    kind: Kind,
    seq: int,
    prev: bytes,
    author: str = A,
    *,
    members: tuple[str, ...] = (),
    admins: tuple[str, ...] = (),
    group_id: str = GID,
) -> Entry:
    signed = chain.sign_change(
        KEY,
        group_id=group_id,
        seq=seq,
        prev=prev,
        at=1_700_000_000_000 + seq,
        author=author,
        device=DEV,
        kind=kind,
        name="Climbing" if kind == "create" else "",
        members=members,
        admins=admins,
    )
    return chain.parse_entry({**signed, "seq": seq, "certificate": None})


def apply(state: ChainState | None, item: Entry, *, signed: bool) -> ChainState:
    return chain.apply(state, item, signed=signed, group_id=GID)


def service_leave(seq: int, prev: bytes, author: str) -> Entry:
    """The unsigned leave the service records when `author`'s account is deleted."""
    obj = json.loads(entry("leave", seq, prev, author).body)
    obj["device"] = ""
    return chain.parse_entry(_raw(obj))


def fold(*steps: tuple[Entry, bool]) -> ChainState:
    state: ChainState | None = None
    for item, signed in steps:
        state = chain.apply(state, item, signed=signed, group_id=GID)
    assert state is not None
    return state


def seats(state: ChainState) -> list[tuple[str, bool, bool, bool]]:
    return [(s.user_id, s.admin, s.verified, s.trusted) for s in state.seats]


def created(signed: bool = True) -> tuple[ChainState, Entry]:
    first = entry("create", 1, b"", members=(C, B))
    return fold((first, signed)), first


# --- the signed bytes ------------------------------------------------------------------


def test_a_change_is_canonical_json_signed_by_the_device_over_a_prefix() -> None:
    signed = chain.sign_change(
        KEY,
        group_id=GID,
        seq=3,
        prev=b"\x01" * 32,
        at=5,
        author=A,
        device=DEV,
        kind="add",
        members=[B, C],
    )
    body = base64.b64decode(signed["body"])
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    assert json.loads(body) == {
        "v": 1,
        "group_id": GID,
        "seq": 3,
        "prev": base64.b64encode(b"\x01" * 32).decode(),
        "at": 5,
        "author": A,
        "device": DEV,
        "kind": "add",
        "name": "",
        "members": [B, C],
        "admins": [],
    }
    parsed = chain.parse_entry({**signed, "seq": 3, "certificate": None})
    assert chain.signature_valid(parsed, KEY.public_key)
    assert not chain.signature_valid(parsed, IdentityKeyPair.generate().public_key)
    # the signature covers the domain prefix: the bare body does not verify
    assert parsed.hash == chain.change_hash(body) != chain.hashlib.sha256(body).digest()


def test_a_tampered_body_no_longer_verifies() -> None:
    first = entry("add", 2, b"\x02" * 32, members=(B,))
    obj = json.loads(first.body)
    obj["members"] = [D]
    forged = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    tampered = chain.parse_entry(
        {
            "body": base64.b64encode(forged).decode(),
            "signature": base64.b64encode(first.signature).decode(),
        }
    )
    assert not chain.signature_valid(tampered, KEY.public_key)


def _raw(obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return {"body": base64.b64encode(body).decode(), "signature": "", **extra}


def _good() -> dict[str, Any]:
    return json.loads(entry("remove", 4, b"\x03" * 32, members=(B,)).body)


@pytest.mark.parametrize(
    ("change", "extra", "says"),
    [
        ({"extra": 1}, {}, "fields of a change"),
        ({"v": 2}, {}, "bad version"),
        ({"seq": 0}, {}, "bad version, seq"),
        ({"seq": True}, {}, "bad version, seq"),
        ({"group_id": "G"}, {}, "bad group"),
        ({"author": "x"}, {}, "bad group or author"),
        ({"device": "nope"}, {}, "bad device or kind"),
        ({"kind": "rename"}, {}, "bad device or kind"),
        ({"prev": "AAAA"}, {}, "prev is not a hash"),
        ({"prev": "!!"}, {}, "prev is not valid base64"),
        ({"members": [B, B]}, {}, "names a user twice"),
        ({"members": ["x"]}, {}, "not a list of user ids"),
        ({"name": 3}, {}, "bad name"),
        ({}, {"seq": 5}, "differs from the signed one"),
        ({}, {"certificate": "x"}, "certificate is not an object"),
    ],
)
def test_malformed_entries_are_refused_with_what_is_wrong(
    change: dict[str, Any], extra: dict[str, Any], says: str
) -> None:
    obj = _good()
    obj.update(change)
    if "extra" in change:
        obj["extra"] = 1
    with pytest.raises(ChainError, match=says):
        chain.parse_entry(_raw(obj, **extra))


def test_an_entry_that_is_not_json_or_too_big_is_refused() -> None:
    with pytest.raises(ChainError, match="not JSON"):
        chain.parse_entry({"body": base64.b64encode(b"\xff{").decode()})
    huge = base64.b64encode(b" " * (chain.MAX_CHANGE_BYTES + 1)).decode()
    with pytest.raises(ChainError, match="too large"):
        chain.parse_entry({"body": huge})
    with pytest.raises(ChainError, match="not an object"):
        chain.parse_entry([1])


# --- folding the chain -----------------------------------------------------------------


def test_a_signed_creation_verifies_its_first_members_in_seniority_order() -> None:
    state, first = created()
    # the creator, then the others by user id (the service's order of seniority)
    assert seats(state) == [(A, True, True, True), (B, False, True, False), (C, False, True, False)]
    assert (state.seq, state.head) == (1, first.hash)
    assert state.unverified([B, C]) == ()


def test_an_unsigned_creation_verifies_nobody() -> None:
    state, _ = created(signed=False)
    assert state.unverified([A, B, C]) == (A, B, C)
    assert not state.trusted(A)


def test_only_a_trusted_admin_grows_the_group_and_anyone_shrinks_it() -> None:
    state, first = created()
    add = entry("add", 2, first.hash, members=(E, D))
    by_admin = apply(state, add, signed=True)
    assert seats(by_admin)[3:] == [(D, False, True, False), (E, False, True, False)]
    # unsigned, or signed by a plain member: listed (the service has them) but unverified
    assert apply(state, add, signed=False).unverified([D, E]) == (D, E)
    by_member = entry("add", 2, first.hash, B, members=(D,))
    assert apply(state, by_member, signed=True).unverified([D]) == (D,)
    # a removal counts whether or not this device can check it: it only takes away,
    # and a service that withheld an admin's certificate must not keep C trusted
    remove = entry("remove", 2, first.hash, members=(C,))
    assert [s.user_id for s in apply(state, remove, signed=True).seats] == [A, B]
    assert [s.user_id for s in apply(state, remove, signed=False).seats] == [A, B]


def test_a_leave_counts_when_the_member_signed_it_or_the_service_recorded_a_deletion() -> None:
    state, first = created()
    assert [
        s.user_id for s in apply(state, entry("leave", 2, first.hash, C), signed=True).seats
    ] == [A, B]
    forged = entry("leave", 2, first.hash, C)  # signed, but not by C's device
    assert [s.user_id for s in apply(state, forged, signed=False).seats] == [A, B, C]
    deleted = apply(state, service_leave(2, first.hash, C), signed=False)
    assert [s.user_id for s in deleted.seats] == [A, B]
    # someone who is not in the group cannot leave it
    stranger = apply(state, service_leave(2, first.hash, D), signed=False)
    assert stranger.seats == state.seats


def test_a_ghost_the_service_lists_without_any_change_is_unverified() -> None:
    state, _ = created()
    assert state.unverified([B, D, C]) == (D,)


def test_promotions_need_a_trusted_admin_and_dismissals_do_not() -> None:
    state, first = created()
    promoted = apply(state, entry("promote", 2, first.hash, members=(B,)), signed=True)
    assert promoted.trusted(B)
    # a promotion nobody trusted signed changes nothing: C may not add
    sneaky = apply(promoted, entry("promote", 3, promoted.head, members=(C,)), signed=False)
    assert seats(sneaky)[2] == (C, False, True, False)
    adds = apply(sneaky, entry("add", 4, sneaky.head, C, members=(D,)), signed=True)
    assert adds.unverified([D]) == (D,)
    by_b = apply(sneaky, entry("add", 4, sneaky.head, B, members=(D,)), signed=True)
    assert by_b.unverified([D]) == ()
    # a promotion makes an admin, never a member the chain does not vouch for
    ghost = apply(by_b, entry("add", 5, by_b.head, C, members=(E,)), signed=True)
    crowned = apply(ghost, entry("promote", 6, ghost.head, members=(E,)), signed=True)
    assert seats(crowned)[-1] == (E, True, False, False)
    # a dismissal counts whoever made it: it only takes away
    dismissed = apply(crowned, entry("dismiss", 7, crowned.head, members=(B,)), signed=False)
    assert not dismissed.trusted(B)
    assert seats(dismissed)[1] == (B, False, True, False)


def test_the_last_admin_leaving_makes_the_longest_standing_member_admin() -> None:
    state, first = created()
    left = apply(state, entry("leave", 2, first.hash), signed=True)
    assert seats(left) == [(B, True, True, True), (C, False, True, False)]
    # another member's leave makes nobody admin
    promoted = apply(state, entry("promote", 2, first.hash, members=(C,)), signed=True)
    b_left = apply(promoted, entry("leave", 3, promoted.head, B), signed=True)
    assert seats(b_left) == [(A, True, True, True), (C, True, True, True)]
    # an heir the chain does not vouch for gets the role, never the trust
    only_b = fold((entry("create", 1, b"", members=(B,)), True))
    with_ghost = apply(only_b, entry("add", 2, only_b.head, members=(C,)), signed=False)
    b_gone = apply(with_ghost, service_leave(3, with_ghost.head, B), signed=False)
    a_gone = apply(b_gone, service_leave(4, b_gone.head, A), signed=False)
    assert seats(a_gone) == [(C, True, False, False)]


def test_a_vouch_verifies_the_members_it_names_when_a_trusted_admin_signs_it() -> None:
    state, first = created()
    ghost = apply(state, entry("add", 2, first.hash, members=(D,)), signed=False)
    assert ghost.unverified([D]) == (D,)
    vouched = apply(
        ghost, entry("vouch", 3, ghost.head, members=(A, B, C, D), admins=(A,)), signed=True
    )
    assert vouched.unverified([B, C, D]) == ()
    # a member the chain never saw (the service added them with no change at all)
    # takes the place the vouch gives them
    listed = apply(
        ghost, entry("vouch", 3, ghost.head, members=(A, E, B, C, D), admins=(A, E)), signed=True
    )
    assert seats(listed)[:2] == [(A, True, True, True), (E, True, True, True)]
    unsigned = apply(
        ghost, entry("vouch", 3, ghost.head, members=(A, B, C, D), admins=(A,)), signed=False
    )
    assert unsigned.seats == ghost.seats  # a vouch nobody trusted signed changes nothing


def test_a_group_from_before_chains_starts_with_a_vouch() -> None:
    start = entry("vouch", 8, b"", members=(B, A, C), admins=(A,))
    state = fold((start, True))
    assert seats(state) == [(B, False, True, False), (A, True, True, True), (C, False, True, False)]
    # a vouch by someone it does not name as admin vouches for nobody
    stranger = entry("vouch", 8, b"", B, members=(B, A), admins=(A,))
    assert fold((stranger, True)).unverified([A, B]) == (A, B)


@pytest.mark.parametrize(
    "broken",
    [
        "gap",
        "wrong prev",
        "other group",
        "second create",
        "second start",
        "starts with add",
        "create not first",
        "another group's start",
    ],
)
def test_a_chain_that_does_not_follow_on_is_refused(broken: str) -> None:
    state, first = created()
    follow = {
        "gap": (state, entry("add", 3, first.hash, members=(D,))),
        "wrong prev": (state, entry("add", 2, b"\x09" * 32, members=(D,))),
        "other group": (state, entry("add", 2, first.hash, members=(D,), group_id="1e" * 16)),
        "second create": (state, entry("create", 2, first.hash)),
        "second start": (state, entry("vouch", 2, b"", members=(A,), admins=(A,))),
        "starts with add": (None, entry("add", 1, b"", members=(D,))),
        "create not first": (None, entry("create", 4, b"")),
        "another group's start": (None, entry("create", 1, b"", group_id="1e" * 16)),
    }[broken]
    with pytest.raises(ChainError):
        apply(follow[0], follow[1], signed=True)


def test_the_state_survives_its_stored_form() -> None:
    state, _ = created()
    again = ChainState.from_json(GID, state.seq, state.head, state.to_json())
    assert again == state
