"""The chaos suite's verdict (tests/reliability/chaos.py) counts what it must: a check
that passed because it counted nothing would hide every bug the suite looks for."""

from __future__ import annotations

import asyncio
import random

from tests.reliability.chaos import ChaosPlan, Ledger, _make_chaos, progress_line

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


def test_a_progress_line_says_how_far_a_run_is_and_its_recent_pace() -> None:
    plan = ChaosPlan(messages=100, accepted_per_event=4.0, restart_share=0.5, deadline_s=60.0)
    ledger = Ledger()
    for n in range(40):
        ledger.accepted[f"m{n}"] = n
    ledger.arrivals[(BOB, ALICE, BOB)] = [f"m{n}" for n in range(30)]
    ledger.delivered[ALICE] = {(BOB, f"m{n}") for n in range(25)}
    ledger.events["connections dropped"] = 3
    line = progress_line(ledger, plan, elapsed_s=60.0, last=(30.0, 10))
    # 30 accepted in the last 30 s
    expected = "chaos     60 s: 40/100 accepted (1.0/s lately), 30 shown, 25 ticked, 3 drops"
    assert line == expected + ", 0 restarts"
    assert "apps restarted" not in ledger.events  # reading it added no event to the figures


class _Phone:
    """A device as the chaos sees it: something to drop or restart."""

    def __init__(self) -> None:
        self.drops = self.restarts = 0

    def drop(self) -> None:
        self.drops += 1

    async def restart(self) -> None:
        self.restarts += 1


async def test_the_chaos_comes_with_accepted_messages_not_with_time() -> None:
    phones = [_Phone() for _ in range(5)]
    ledger = Ledger()
    plan = ChaosPlan(messages=400, accepted_per_event=4.0, restart_share=0.3, deadline_s=60.0)
    chaos = asyncio.get_running_loop().create_task(
        _make_chaos(phones, ledger, plan, random.Random(3))  # type: ignore[arg-type]
    )
    for _ in range(20):  # nothing accepted: however long it waits, nothing happens
        await asyncio.sleep(0)
    assert sum(p.drops + p.restarts for p in phones) == 0

    for n in range(400):
        ledger.accepted[f"m{n}"] = n
        ledger.progressed.set()
        for _ in range(3):
            await asyncio.sleep(0)
    chaos.cancel()
    drops = sum(p.drops for p in phones)
    restarts = sum(p.restarts for p in phones)
    # about one event per four messages (100), about 30% of them restarts
    assert 70 <= drops + restarts <= 130
    assert 0.15 <= restarts / (drops + restarts) <= 0.45
    assert all(p.drops + p.restarts > 0 for p in phones)  # any device may be hit
