"""The chaos suite's verdict (tests/reliability/chaos.py) counts what it must: a check
that passed because it counted nothing would hide every bug the suite looks for."""

from __future__ import annotations

from tests.reliability.chaos import Ledger

ALICE, BOB = "a" * 32, "b" * 32


def _bob_saw(arrived: list[tuple[str, int]], also_accepted: tuple[str, ...] = ()) -> dict[str, int]:
    """Alice sent m1, m2, m3 to Bob; Bob saw `arrived` ((client id, ts), in the order
    they came), each accepted and ticked, as was each of `also_accepted`."""
    ledger = Ledger()
    for client_id in also_accepted:
        ledger.accepted[client_id] = 1
    ledger.audience[(ALICE, BOB)] = [BOB]
    ledger.sent_order[(ALICE, BOB)] = ["m1", "m2", "m3"]
    for client_id, ts in arrived:
        ledger.accepted[client_id] = ts
        ledger.shown[(BOB, f"{ALICE}/{client_id}")].append(ts)
        ledger.arrivals[(BOB, ALICE, BOB)].append(client_id)
        ledger.delivered[ALICE].add((BOB, client_id))
    return ledger.verdict()


def test_messages_shown_by_time_in_the_order_sent_are_in_order() -> None:
    verdict = _bob_saw([("m1", 10), ("m2", 11), ("m3", 12)])
    assert (verdict["shown out of order"], verdict["lost"], verdict["shown twice"]) == (0, 0, 0)


def test_messages_of_one_frame_share_a_millisecond_and_count_in_order_as_they_came() -> None:
    assert _bob_saw([("m1", 10), ("m2", 10), ("m3", 10)])["shown out of order"] == 0
    # the same millisecond but come the other way round: a reader sees them swapped
    assert _bob_saw([("m2", 10), ("m1", 10), ("m3", 11)])["shown out of order"] == 1


def test_a_later_message_stamped_earlier_is_out_of_order_however_it_came() -> None:
    assert _bob_saw([("m1", 10), ("m2", 9), ("m3", 12)])["shown out of order"] == 1
    # arriving ahead of an older one is put right by the time, not a fault
    verdict = _bob_saw([("m2", 11), ("m1", 10), ("m3", 12)])
    assert verdict["shown out of order"] == 0
    assert verdict["arrived ahead of an older one (put right by ts)"] == 1


def test_a_message_never_shown_is_lost_and_one_shown_twice_is_counted() -> None:
    assert _bob_saw([("m1", 10), ("m3", 12)])["lost"] == 0  # m2 never accepted: not lost
    assert _bob_saw([("m1", 10), ("m3", 12)], also_accepted=("m2",))["lost"] == 1
    verdict = _bob_saw([("m1", 10), ("m2", 11), ("m2", 11), ("m3", 12)])
    assert verdict["shown twice"] == 1
