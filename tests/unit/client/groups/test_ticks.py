"""Group ticks on the sender's side: delivered when every member device acked, read
when every member read, with per-member detail."""

from __future__ import annotations

from parley.groups.ticks import GroupReceipts

ME, BOB, CAROL, DAVE = "a" * 32, "b" * 32, "c" * 32, "d" * 32


def _ticks() -> GroupReceipts:
    return GroupReceipts(
        ME,
        {
            ME: ["my-laptop"],  # the sender's other device: not a member to wait for
            BOB: ["bob-phone", "bob-laptop"],
            CAROL: ["carol-phone"],
        },
    )


def test_a_new_message_shows_sent() -> None:
    ticks = _ticks()
    assert ticks.status == "sent"
    assert ticks.waiting_for("delivered") == [BOB, CAROL]


def test_delivered_needs_every_device_of_every_member() -> None:
    ticks = _ticks()

    ticks.apply(BOB, "bob-phone", "delivered", 10)
    ticks.apply(CAROL, "carol-phone", "delivered", 11)
    assert ticks.status == "sent"  # bob's laptop has not acked
    assert ticks.waiting_for("delivered") == [BOB]

    ticks.apply(BOB, "bob-laptop", "delivered", 12)
    assert ticks.status == "delivered"
    bob, carol = ticks.members()
    assert bob.delivered_to == frozenset({"bob-phone", "bob-laptop"})
    assert (bob.delivered_at, carol.delivered_at) == (12, 11)


def test_read_needs_every_member_and_implies_delivered_for_that_member() -> None:
    ticks = _ticks()

    ticks.apply(BOB, "bob-phone", "read", 20)
    assert ticks.status == "sent"
    bob, carol = ticks.members()
    assert (bob.tick, bob.delivered, bob.read_at) == ("read", True, 20)
    assert carol.tick == "sent"

    ticks.apply(CAROL, "carol-phone", "read", 21)
    assert ticks.status == "read"
    assert ticks.waiting_for("read") == []


def test_the_senders_own_devices_and_strangers_change_nothing() -> None:
    ticks = _ticks()

    assert not ticks.apply(ME, "my-laptop", "delivered", 5)
    assert not ticks.apply(DAVE, "dave-phone", "read", 5)
    assert not ticks.apply(BOB, "bob-phone", "typing", 5)
    assert [m.user_id for m in ticks.members()] == [BOB, CAROL]


def test_a_repeated_receipt_is_not_a_change() -> None:
    ticks = _ticks()
    assert ticks.apply(CAROL, "carol-phone", "delivered", 1)
    assert not ticks.apply(CAROL, "carol-phone", "delivered", 2)
    assert ticks.members()[1].delivered_at == 1


def test_an_ack_from_a_device_the_sender_did_not_know_counts() -> None:
    ticks = GroupReceipts(ME, {CAROL: ["carol-phone"]})

    ticks.apply(CAROL, "carol-new-tablet", "delivered", 3)

    (carol,) = ticks.members()
    assert carol.devices == frozenset({"carol-phone", "carol-new-tablet"})
    assert ticks.status == "sent"
    ticks.apply(CAROL, "carol-phone", "delivered", 4)
    assert ticks.status == "delivered"


def test_a_member_who_left_no_longer_holds_the_ticks_back() -> None:
    ticks = _ticks()
    ticks.apply(BOB, "bob-phone", "read", 1)

    ticks.forget(CAROL)

    assert ticks.status == "read"


def test_members_without_devices_are_shown_but_not_waited_for() -> None:
    ticks = GroupReceipts(ME, {BOB: ["bob-phone"], CAROL: []})

    ticks.apply(BOB, "bob-phone", "delivered", 1)

    assert ticks.status == "delivered"
    assert [m.user_id for m in ticks.members()] == [BOB, CAROL]


def test_a_message_to_nobody_stays_sent() -> None:
    assert GroupReceipts(ME, {ME: ["my-laptop"]}).status == "sent"


def test_receipt_events_from_the_server_are_taken_as_they_come() -> None:
    ticks = GroupReceipts(ME, {BOB: ["bob-phone"]})
    event = {
        "event": "receipt",
        "id": f"r#{BOB}#bob-phone#delivered-0",
        "from": BOB,
        "from_device": "bob-phone",
        "status": "delivered",
        "ids": ["g-1"],
        "ts": 1_800_000_000_000,
    }

    assert ticks.apply_event(event)
    assert not ticks.apply_event({"from": BOB})
    assert ticks.status == "delivered"


def test_the_ticks_survive_saving_and_restoring() -> None:
    ticks = _ticks()
    ticks.apply(BOB, "bob-phone", "delivered", 1)
    ticks.apply(CAROL, "carol-phone", "read", 2)

    restored = GroupReceipts.from_dict(ticks.to_dict())

    assert restored.members() == ticks.members()
    restored.apply(BOB, "bob-laptop", "delivered", 3)
    assert restored.status == "delivered"
