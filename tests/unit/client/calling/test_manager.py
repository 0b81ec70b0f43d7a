"""The call state machine of one device (`parley.calling.manager.Calls`), with the
media and the network replaced: which signals it sends, what it logs, and that no
call stays live when the other side goes quiet."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from parley import relationships
from parley.calling import manager as manager_module
from parley.calling.call import Call, CallRefused
from parley.calling.manager import Calls
from parley.calling.relays import IceConfig
from parley.content.calls import CallSignal, Candidate
from parley.crypto import IdentityKeyPair
from parley.models import (
    Account,
    CallEnded,
    CallMissed,
    CallState,
    Contact,
    Direction,
    Event,
    IncomingCall,
)
from parley.protocol import OutboxEntry
from parley.store import Store

ME, MY_DEVICE = "a" * 32, "1" * 16
BOB, BOB_PHONE, BOB_LAPTOP = "b" * 32, "2" * 16, "3" * 16
EVE, EVE_DEVICE = "e" * 32, "4" * 16
FP = "sha-256 " + ":".join(["0F"] * 32)
SDP = f"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=fingerprint:{FP}\r\n"


class FakeSignaller:
    """Records what would be sealed and sent."""

    def __init__(self) -> None:
        self.signals: list[tuple[str, CallSignal, int | None, bool]] = []
        self.sent: dict[str, tuple[str, str]] = {}

    async def send(
        self, contact: Contact, signal: CallSignal, *, ttl: int | None, ring: bool = False
    ) -> str:
        client_id = f"s{len(self.signals)}"
        self.signals.append((contact.user_id, signal, ttl, ring))
        self.sent[client_id] = (signal.call, signal.type)
        return client_id

    async def send_own(self, signal: CallSignal, *, ttl: int | None) -> str | None:
        self.signals.append((ME, signal, ttl, False))
        return None

    def to(self, user: str) -> list[tuple[str, str | None]]:
        """(type, reason) of each signal sent to `user`."""
        return [(s.type, s.reason) for u, s, _, _ in self.signals if u == user]


class FakeMedia:
    """A media session that connects when told to."""

    made: ClassVar[list[FakeMedia]] = []

    def __init__(self, ice: IceConfig, **kwargs: Any) -> None:
        self.on_state = kwargs["on_state"]
        self.relay_only = kwargs["relay_only"]
        self.closed = False
        self.candidates: list[Candidate] = []
        self.hold_answer: asyncio.Event | None = None
        FakeMedia.made.append(self)

    async def offer(self) -> str:
        return SDP

    async def answer(self, sdp: str) -> str:
        if self.hold_answer is not None:
            await self.hold_answer.wait()
        return SDP

    async def accept(self, sdp: str) -> None:
        return None

    async def add_candidates(self, candidates: tuple[Candidate, ...]) -> None:
        self.candidates += candidates

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def phone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Calls, FakeSignaller, list[Event]]:
    FakeMedia.made = []
    monkeypatch.setattr(manager_module, "_media", lambda: SimpleNamespace(MediaSession=FakeMedia))
    store = Store.open(tmp_path / "p", keyring=None, allow_plaintext=True)
    account = Account(ME, MY_DEVICE, "+15550000001")
    store.accounts.save(account, IdentityKeyPair.generate())
    store.contacts.add(BOB, "Bob", "+15550000002")
    relationships.accept(store, BOB)  # eve is a stranger
    events: list[Event] = []
    signaller = FakeSignaller()

    async def relays() -> IceConfig:
        return IceConfig((), True, time.time() + 300)

    calls = Calls(store, account, signaller, relays, events.append)  # type: ignore[arg-type]
    return calls, signaller, events


def offer(call_id: str) -> CallSignal:
    return CallSignal("offer", call_id, sdp=SDP, fingerprint=FP)


async def arrive(calls: Calls, sender: str, device: str, signal: CallSignal) -> None:
    calls.received(sender, device, signal, int(time.time() * 1000))
    assert calls._worker is not None
    await calls._worker


async def ringing(calls: Calls, call_id: str, sender: str = BOB, device: str = BOB_PHONE) -> Call:
    await arrive(calls, sender, device, offer(call_id))
    call = calls.get(call_id)
    assert call is not None
    return call


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_call_whose_media_closes_without_a_word_ends_and_frees_the_device(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, signaller, events = phone
    calls.hangup_grace = 0.05
    call = await ringing(calls, "c1" * 16)
    await call.accept()
    FakeMedia.made[0].on_state("connected")
    await settle()
    assert call.state is CallState.CONNECTED
    FakeMedia.made[0].on_state("closed")  # the other side vanished: ICE consent ran out
    await settle()
    assert call.state is CallState.CONNECTED  # its hang-up may still be on the way
    record = await asyncio.wait_for(call.wait_ended(), 1)
    assert (record.reason, record.outcome) == ("failed", "answered")
    assert ("hangup", "failed") in signaller.to(BOB)
    assert not calls.busy()
    assert calls.get(call.call_id) is None  # forgotten; the log keeps it
    assert [e.record.reason for e in events if isinstance(e, CallEnded)] == ["failed"]


async def test_an_answered_call_that_never_connects_fails_after_the_deadline(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, signaller, _ = phone
    calls.connect_timeout = 0.05
    call = await ringing(calls, "c2" * 16)
    await call.accept()
    record = await asyncio.wait_for(call.wait_ended(), 1)
    assert (record.reason, record.outcome) == ("failed", "failed")
    assert FakeMedia.made[0].closed
    assert signaller.to(BOB)[-1] == ("hangup", "failed")


async def test_a_ringing_call_does_not_make_the_device_busy_and_taking_one_busies_the_rest(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, signaller, events = phone
    first = await ringing(calls, "d1" * 16)
    second = await ringing(calls, "d2" * 16, BOB, BOB_LAPTOP)
    stranger = await ringing(calls, "d3" * 16, EVE, EVE_DEVICE)
    assert [e.call.call_id for e in events if isinstance(e, IncomingCall)] == [
        first.call_id,
        second.call_id,
        stranger.call_id,
    ]
    await first.accept()
    assert second.state is CallState.ENDED
    assert stranger.state is CallState.ENDED
    assert ("busy", None) in signaller.to(BOB)
    assert signaller.to(EVE) == []  # a stranger hears nothing: not even busy
    missed = [e.record.call_id for e in events if isinstance(e, CallMissed)]
    assert missed == [second.call_id, stranger.call_id]


async def test_an_offer_while_in_a_call_is_busy_for_a_contact_and_silent_for_a_stranger(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, signaller, events = phone
    call = await ringing(calls, "e1" * 16)
    await call.accept()
    await arrive(calls, EVE, EVE_DEVICE, offer("e2" * 16))
    assert signaller.to(EVE) == []
    assert calls.record("e2" * 16).outcome == "missed"  # type: ignore[union-attr]
    await arrive(calls, BOB, BOB_LAPTOP, offer("e3" * 16))
    assert signaller.to(BOB)[-1] == ("busy", None)
    assert not any(isinstance(e, IncomingCall) and e.call.call_id == "e3" * 16 for e in events)


async def test_a_stranger_is_not_told_a_device_rang(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, signaller, _ = phone
    await ringing(calls, "f1" * 16, EVE, EVE_DEVICE)
    await ringing(calls, "f2" * 16)
    assert signaller.to(EVE) == []
    assert signaller.to(BOB) == [("ringing", None)]


async def test_closing_while_a_call_rings_says_nothing(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, signaller, _ = phone
    call = await ringing(calls, "a1" * 16)
    sent = len(signaller.signals)
    await calls.close()
    assert call.state is CallState.ENDED
    assert len(signaller.signals) == sent  # no decline: another device may answer
    assert calls.record(call.call_id).outcome == "missed"  # type: ignore[union-attr]


async def test_a_hang_up_while_answering_closes_the_media_and_sends_no_answer(
    phone: tuple[Calls, FakeSignaller, list[Event]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls, signaller, _ = phone
    call = await ringing(calls, "b1" * 16)
    held = asyncio.Event()
    real_init = FakeMedia.__init__

    def holding(self: FakeMedia, ice: IceConfig, **kwargs: Any) -> None:
        real_init(self, ice, **kwargs)
        self.hold_answer = held

    monkeypatch.setattr(FakeMedia, "__init__", holding)
    accepting = asyncio.create_task(call.accept())
    await settle()
    await arrive(calls, BOB, BOB_PHONE, CallSignal("hangup", call.call_id, reason="normal"))
    held.set()
    await accepting
    assert call.state is CallState.ENDED
    assert FakeMedia.made[0].closed
    assert ("answer", None) not in signaller.to(BOB)


async def test_only_the_other_end_of_the_call_can_end_it_or_add_candidates(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, _, _ = phone
    call = await ringing(calls, "b2" * 16)
    await call.accept()
    candidate = Candidate("candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "0", 0)
    ice = CallSignal("ice", call.call_id, candidates=(candidate,))
    await arrive(calls, EVE, EVE_DEVICE, ice)  # someone else who learned the id
    await arrive(calls, BOB, BOB_LAPTOP, ice)  # their device that is not in the call
    assert FakeMedia.made[0].candidates == []
    await arrive(calls, BOB, BOB_PHONE, ice)  # the caller trickles to the callee
    assert FakeMedia.made[0].candidates == [candidate]
    for sender, device in ((EVE, EVE_DEVICE), (BOB, BOB_LAPTOP)):
        await arrive(calls, sender, device, CallSignal("hangup", call.call_id, reason="normal"))
        assert call.state is CallState.CONNECTING
    await arrive(calls, BOB, BOB_PHONE, CallSignal("hangup", call.call_id, reason="normal"))
    assert call.state is CallState.ENDED


async def test_a_missed_call_heard_of_later_is_logged_only_from_someone_known(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, _, events = phone
    await arrive(calls, EVE, EVE_DEVICE, CallSignal("hangup", "9e" * 16, reason="timeout"))
    await arrive(calls, BOB, BOB_PHONE, CallSignal("hangup", "9b" * 16, reason="timeout"))
    assert [r.peer for r in calls.store.calls.listed()] == [BOB]
    assert [e.contact.user_id for e in events if isinstance(e, CallMissed)] == [BOB]


async def test_only_a_failed_offer_fails_its_call(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, signaller, _ = phone
    bob = calls.store.contacts.get(BOB)
    assert bob is not None
    call = await calls.place(bob)
    sent = {kind: cid for cid, (_, kind) in signaller.sent.items()}
    entry = OutboxEntry(sent["offer"], BOB, {})
    stray = OutboxEntry("not-a-signal", BOB, {})
    assert not calls.signal_done(stray, "expired")
    # an earlier call's hang-up that expired is no reason to fail this one
    signaller.sent["old"] = ("0" * 32, "hangup")
    assert calls.signal_done(OutboxEntry("old", BOB, {}), "expired")
    assert call.state is CallState.CALLING
    assert calls.signal_done(entry, "expired")
    record = await asyncio.wait_for(call.wait_ended(), 1)
    assert record.outcome == "failed"
    assert record.direction is Direction.OUT


async def test_one_cannot_call_oneself_or_place_a_second_call(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, _, _ = phone
    with pytest.raises(CallRefused, match="yourself"):
        await calls.place(Contact(ME, "me", None))
    bob = calls.store.contacts.get(BOB)
    assert bob is not None
    await calls.place(bob)
    with pytest.raises(CallRefused, match="already in a call"):
        await calls.place(bob)


async def test_a_hang_up_that_follows_the_media_closing_ends_the_call_normally(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, signaller, _ = phone
    call = await ringing(calls, "c3" * 16)
    await call.accept()
    FakeMedia.made[0].on_state("connected")
    await settle()
    FakeMedia.made[0].on_state("closed")  # the caller closed its media as it hung up
    await arrive(calls, BOB, BOB_PHONE, CallSignal("hangup", call.call_id, reason="normal"))
    record = await asyncio.wait_for(call.wait_ended(), 1)
    assert (record.reason, record.outcome) == ("normal", "answered")
    assert ("hangup", "failed") not in signaller.to(BOB)


async def test_a_device_hides_its_addresses_from_strangers_unless_told_otherwise(
    phone: tuple[Calls, FakeSignaller, list[Event]],
) -> None:
    calls, _, _ = phone
    stranger = await ringing(calls, "7e" * 16, EVE, EVE_DEVICE)
    await stranger.accept()
    await stranger.hangup()
    known = await ringing(calls, "7b" * 16)
    await known.accept()
    await known.hangup()
    forced = await ringing(calls, "7c" * 16)
    await forced.accept(relay_only=True)
    assert [m.relay_only for m in FakeMedia.made] == [True, False, True]
