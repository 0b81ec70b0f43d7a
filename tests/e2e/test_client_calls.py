"""Calls end to end: real clients, signalling through the local stack inside the
Double Ratchet, real WebRTC media (aiortc) on loopback. A tone sent by one side is
found in what the other side hears (Goertzel, one DFT bin)."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from parley import (
    CallEnded,
    CallMissed,
    CallRefused,
    CallState,
    CallStateChanged,
    Client,
    Direction,
    IncomingCall,
    MessageReceived,
)
from parley.calling.audio import Capture, FrameCounter, Tone
from parley.calling.manager import OFFER_TTL_S
from parley.calling.media import MediaSession
from parley.conversations.sealing import check_entry_size, new_client_id
from parley.models import Account
from parley.protocol import OutboxEntry
from parley.push import challenge_from_local_push, push_count
from tests.e2e.conftest import LocalStack
from tests.e2e.support import (
    WAIT_S,
    acquainted,
    client,
    clients,
    expect,
    new_device,
    new_person,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

# the callers in these tests give up quickly (a real one rings 45 s)
RING_S = 3.0


async def people(stack: LocalStack, home: Path, *names: str) -> dict[str, Account]:
    found = {name: await new_person(stack, home, name) for name in names}
    await acquainted(stack, home, found)
    return found


async def synced(*apps: Client) -> None:
    for app in apps:
        await asyncio.wait_for(app.wait_synced(), WAIT_S)
        await app.refresh_own_devices()


async def pushes(stack: LocalStack, token: str, kind: str) -> list[dict[str, Any]]:
    """What the push sink holds for `token` of this type."""
    async with aiohttp.ClientSession() as http, http.get(stack.push_url) as answer:
        pushed: list[dict[str, Any]] = await answer.json()
    return [p for p in pushed if p["token"] == token and p["type"] == kind]


async def heard(capture: Capture, frequency: int) -> float:
    """How much of the last second `capture` heard is `frequency`, once a second of
    audio has come."""
    async with asyncio.timeout(WAIT_S):
        await capture.wait_heard(1.0)
    return capture.tone_fraction(frequency)


async def test_a_call_carries_each_sides_voice_and_ends_on_both_with_its_duration(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob")
    async with clients(local_stack, tmp_path, "alice", "bob") as (alice, bob):
        alice_events, bob_events = alice.events(), bob.events()
        await synced(alice, bob)

        alice_hears, bob_hears = Capture(), Capture()
        call = await alice.call(who["bob"].user_id, audio=Tone(440), sink=alice_hears)
        assert call.state is CallState.CALLING
        ringing = await expect(bob_events, IncomingCall)
        assert ringing.call.contact.user_id == who["alice"].user_id
        assert ringing.call.video is False
        await expect(alice_events, CallStateChanged, lambda e: e.state is CallState.RINGING)

        await ringing.call.accept(audio=Tone(660), sink=bob_hears)
        async with asyncio.timeout(WAIT_S):
            await call.wait_state(CallState.CONNECTED)
        await expect(bob_events, CallStateChanged, lambda e: e.state is CallState.CONNECTED)

        # the tones cross: each side hears the other's, not its own
        assert await heard(bob_hears, 440) > 0.5
        assert bob_hears.tone_fraction(660) < 0.05
        assert await heard(alice_hears, 660) > 0.5
        assert alice_hears.tone_fraction(440) < 0.05
        stats = await call.stats()
        assert stats is not None
        assert stats.packets_received > 20
        assert stats.bytes_sent > 0

        await call.hangup()
        mine = await call.wait_ended()
        theirs = await expect(bob_events, CallEnded)
        assert (mine.reason, mine.outcome) == ("normal", "answered")
        assert (theirs.record.reason, theirs.record.outcome) == ("normal", "answered")
        assert mine.duration > 1.0
        assert theirs.record.duration > 1.0
        assert [(r.direction, r.outcome) for r in alice.call_log()] == [(Direction.OUT, "answered")]
        assert [(r.direction, r.outcome) for r in bob.call_log()] == [(Direction.IN, "answered")]
        # the service kept none of it: nothing waits for either of them
        assert alice.current_call() is None
        assert bob.current_call() is None


async def test_a_declined_call_ends_declined_on_both_sides(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob")
    async with clients(local_stack, tmp_path, "alice", "bob") as (alice, bob):
        bob_events = bob.events()
        await synced(alice, bob)
        call = await alice.call(who["bob"].user_id)
        ringing = await expect(bob_events, IncomingCall)
        await ringing.call.decline()
        record = await asyncio.wait_for(call.wait_ended(), WAIT_S)
        assert (record.reason, record.outcome) == ("declined", "declined")
        assert bob.call_log()[0].outcome == "declined"
        with pytest.raises(CallRefused):
            await ringing.call.accept()


async def test_a_callee_in_another_call_is_busy(local_stack: LocalStack, tmp_path: Path) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob", "carol")
    async with clients(local_stack, tmp_path, "alice", "bob", "carol") as (alice, bob, carol):
        bob_events = bob.events()
        await synced(alice, bob, carol)
        bob._phone.ring_timeout = 30  # bob's own call rings on at carol's
        await bob.call(who["carol"].user_id)
        call = await alice.call(who["bob"].user_id)
        record = await asyncio.wait_for(call.wait_ended(), WAIT_S)
        assert (record.reason, record.outcome) == ("busy", "busy")
        missed = await expect(bob_events, CallMissed)
        assert missed.record.peer == who["alice"].user_id
        assert missed.record.reason == "busy"
        with pytest.raises(CallRefused, match="already in a call"):
            await bob.call(who["alice"].user_id)


async def test_an_unanswered_call_is_missed_on_both_logs(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob")
    async with clients(local_stack, tmp_path, "alice", "bob") as (alice, bob):
        bob_events = bob.events()
        await synced(alice, bob)
        alice._phone.ring_timeout = RING_S
        call = await alice.call(who["bob"].user_id)
        await expect(bob_events, IncomingCall)
        record = await asyncio.wait_for(call.wait_ended(), WAIT_S)
        assert (record.reason, record.outcome) == ("timeout", "no_answer")
        missed = await expect(bob_events, CallMissed)
        assert missed.record.call_id == call.call_id
        assert missed.contact.user_id == who["alice"].user_id
        assert [r.outcome for r in bob.call_log()] == ["missed"]


async def test_a_callee_offline_hears_of_the_missed_call_when_it_connects(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob")
    token = f"bob-phone-{secrets.token_hex(8)}"
    async with client(local_stack, tmp_path, "bob", connect=False) as app:
        before = await push_count(local_stack.push_url, token)
        await app.register_push("fcm", token)
        await app.verify_push(
            await challenge_from_local_push(local_stack.push_url, token, after=before)
        )
    async with clients(local_stack, tmp_path, "alice") as (alice,):
        await synced(alice)
        alice._phone.ring_timeout = RING_S
        call = await alice.call(who["bob"].user_id)
        # bob's phone is woken to ring: a high-priority push that says only "call"
        async with asyncio.timeout(WAIT_S):
            while not await pushes(local_stack, token, "call"):  # noqa: ASYNC110 (polled)
                await asyncio.sleep(0.1)
        record = await asyncio.wait_for(call.wait_ended(), WAIT_S)
        assert record.outcome == "no_answer"
        await asyncio.wait_for(alice.wait_outbox_empty(), WAIT_S)
        [ring] = await pushes(local_stack, token, "call")
        assert json.loads(json.loads(ring["message"])["GCM"]) == {
            "data": {"type": "call"},
            "priority": "high",
            "time_to_live": OFFER_TTL_S,
        }
    # the offer lived a minute on the service; the hang-up is what waits for bob
    async with clients(local_stack, tmp_path, "bob") as (bob,):
        bob_events = bob.events()
        missed = await expect(bob_events, CallMissed)
        assert missed.record.call_id == call.call_id
        assert missed.record.direction is Direction.IN
        assert [r.outcome for r in bob.call_log()] == ["missed"]


async def test_every_device_rings_and_the_first_to_answer_takes_the_call(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob")
    await new_device(local_stack, tmp_path, who["bob"], "bob-laptop")
    await new_device(local_stack, tmp_path, who["alice"], "alice-laptop")
    async with clients(local_stack, tmp_path, "alice", "alice-laptop", "bob", "bob-laptop") as apps:
        alice, alice_laptop, bob, laptop = apps
        alice_laptop_events = alice_laptop.events()
        bob_events, laptop_events = bob.events(), laptop.events()
        await synced(*apps)

        call = await alice.call(who["bob"].user_id)
        on_phone = await expect(bob_events, IncomingCall)
        on_laptop = await expect(laptop_events, IncomingCall)
        assert on_phone.call.call_id == on_laptop.call.call_id == call.call_id
        # the caller's other device shows the call going on elsewhere
        await expect(
            alice_laptop_events,
            CallStateChanged,
            lambda e: e.state is CallState.ELSEWHERE and e.call.call_id == call.call_id,
        )

        await on_phone.call.accept()
        stopped = await expect(laptop_events, CallEnded)
        assert stopped.record.reason == "answered_elsewhere"
        assert stopped.record.outcome == "answered_elsewhere"
        async with asyncio.timeout(WAIT_S):
            await call.wait_state(CallState.CONNECTED)
        assert call.peer_device == bob.account.device_id

        await call.hangup()
        ended = await expect(alice_laptop_events, CallEnded)
        assert ended.record.outcome == "answered"
        assert ended.record.elsewhere
        assert laptop.call_log()[0].outcome == "answered_elsewhere"


async def test_a_second_device_answering_too_late_is_told_to_stop(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob")
    await new_device(local_stack, tmp_path, who["bob"], "bob-laptop")
    async with clients(local_stack, tmp_path, "alice", "bob", "bob-laptop") as apps:
        alice, bob, laptop = apps
        bob_events, laptop_events = bob.events(), laptop.events()
        await synced(*apps)
        # the laptop does not hear the phone's "answered elsewhere" (as if it were
        # still on its way): both answer, the caller keeps the first
        laptop.engine.sealer.own_devices = frozenset()
        bob.engine.sealer.own_devices = frozenset()
        call = await alice.call(who["bob"].user_id)
        first = await expect(bob_events, IncomingCall)
        second = await expect(laptop_events, IncomingCall)
        await first.call.accept()
        async with asyncio.timeout(WAIT_S):
            await call.wait_state(CallState.CONNECTING, CallState.CONNECTED)
        await second.call.accept()
        lost = await expect(laptop_events, CallEnded)
        assert lost.record.reason == "answered_elsewhere"
        async with asyncio.timeout(WAIT_S):
            await call.wait_state(CallState.CONNECTED)
        assert call.peer_device == bob.account.device_id
        await call.hangup()


async def test_a_tampered_fingerprint_ends_the_call_as_failed(
    local_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob")
    real_offer = MediaSession.offer

    async def forged(self: MediaSession) -> str:
        # a relay rewriting the SDP to its own certificate (it cannot: the offer is
        # encrypted end to end; this is what would happen if it could)
        sdp = await real_offer(self)
        lines = []
        for line in sdp.split("\r\n"):
            if line.startswith("a=fingerprint:sha-256 "):
                line = "a=fingerprint:sha-256 " + ":".join(["AB"] * 32)
            lines.append(line)
        return "\r\n".join(lines)

    async with clients(local_stack, tmp_path, "alice", "bob") as (alice, bob):
        bob_events = bob.events()
        await synced(alice, bob)
        monkeypatch.setattr(MediaSession, "offer", forged)
        call = await alice.call(who["bob"].user_id)
        ringing = await expect(bob_events, IncomingCall)
        await ringing.call.accept()
        record = await asyncio.wait_for(call.wait_ended(), WAIT_S)
        theirs = await expect(bob_events, CallEnded)
        assert record.reason == "failed"
        assert theirs.record.reason == "failed"
        # the callee checked the caller's certificate against the forged fingerprint
        # and never let media in (the caller may have finished its half of DTLS)
        assert theirs.record.connected_at is None
        assert theirs.record.outcome == "failed"


async def test_malformed_signalling_is_dropped_and_the_session_goes_on(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob")
    async with clients(local_stack, tmp_path, "alice", "bob") as (alice, bob):
        bob_events = bob.events()
        await synced(alice, bob)
        bad = [
            {"v": 1, "kind": "call", "type": "offer", "call": "zz"},
            {"v": 1, "kind": "call", "type": "hangup", "call": "ab" * 16, "reason": "bored"},
            {"v": 1, "kind": "call", "type": "ringing", "call": "ab" * 16, "peer": "ab" * 16},
        ]
        contact = alice.contact(who["bob"].user_id)
        sealer = alice.engine.sealer
        for document in bad:
            plaintext = json.dumps(document).encode()
            sealed = await sealer.seal(contact, plaintext)
            entry = OutboxEntry(new_client_id(), contact.user_id, sealed.payloads)
            check_entry_size(entry)
            sealer.commit(sealed, entry, plaintext, sealer.clock())
            alice.protocol.send(entry)
        sent = await alice.send(who["bob"].user_id, "still there?")
        got = await expect(bob_events, MessageReceived)
        assert got.message.client_id == sent.client_id  # nothing before it was shown
        assert bob.call_log() == []
        # and a real call still works on the same sessions
        call = await alice.call(who["bob"].user_id)
        ringing = await expect(bob_events, IncomingCall)
        assert ringing.call.call_id == call.call_id
        await call.hangup()
        await expect(bob_events, CallEnded)


async def test_a_video_call_carries_frames_both_ways(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    who = await people(local_stack, tmp_path, "alice", "bob")
    async with clients(local_stack, tmp_path, "alice", "bob") as (alice, bob):
        bob_events = bob.events()
        await synced(alice, bob)
        alice_sees, bob_sees = FrameCounter(), FrameCounter()
        call = await alice.call(who["bob"].user_id, video=True, video_sink=alice_sees)
        ringing = await expect(bob_events, IncomingCall)
        assert ringing.call.video is True
        await ringing.call.accept(video_sink=bob_sees)
        async with asyncio.timeout(WAIT_S):
            await alice_sees.received.wait()
            await bob_sees.received.wait()
        assert alice_sees.size == bob_sees.size == (320, 240)
        await call.hangup()
        await expect(bob_events, CallEnded)


async def test_a_stranger_who_calls_is_not_told_the_device_rang(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    alice = await new_person(local_stack, tmp_path, "alice")
    bob = await new_person(local_stack, tmp_path, "bob")
    async with clients(local_stack, tmp_path, "alice", "bob") as (alice_app, bob_app):
        alice_events, bob_events = alice_app.events(), bob_app.events()
        await synced(alice_app, bob_app)
        await alice_app.add_contact(bob.phone, "Bob")  # bob has never heard of alice
        call = await alice_app.call("Bob")
        ringing = await expect(bob_events, IncomingCall)
        assert ringing.call.contact.user_id == alice.user_id
        await ringing.call.decline()
        await asyncio.wait_for(call.wait_ended(), WAIT_S)
        # a ringing signal would have come before the decline (one sender: in order)
        states = [e.state for e in alice_events.drain() if isinstance(e, CallStateChanged)]
        assert CallState.RINGING not in states
        assert states[0] is CallState.CALLING
