"""The WebRTC side on this machine: loopback gathering, and media both ways."""

from __future__ import annotations

import asyncio
import re
import time

from parley.calling.audio import Capture, Tone
from parley.calling.media import MediaSession
from parley.calling.relays import IceConfig
from parley.content.calls import fingerprint_of

LOOPBACK = IceConfig((), loopback=True, expires_at=time.time() + 300)


def candidates(sdp: str) -> list[str]:
    """The address of each candidate an SDP offers."""
    return re.findall(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ", sdp, re.MULTILINE)


async def test_a_loopback_session_offers_only_127_0_0_1() -> None:
    session = MediaSession(LOOPBACK, video=True)
    try:
        sdp = await session.offer()
    finally:
        await session.close()
    found = candidates(sdp)
    assert found  # audio and video each have one
    assert set(found) == {"127.0.0.1"}
    assert fingerprint_of(sdp).startswith("sha-256 ")


async def test_two_loopback_sessions_carry_each_others_tone() -> None:
    caller_hears, callee_hears = Capture(), Capture()
    caller = MediaSession(LOOPBACK, audio_source=Tone(440), audio_sink=caller_hears)
    callee = MediaSession(LOOPBACK, audio_source=Tone(660), audio_sink=callee_hears)
    try:
        await caller.accept(await callee.answer(await caller.offer()))
        async with asyncio.timeout(30):
            await caller.connected.wait()
            await caller_hears.wait_heard(1.0)
            await callee_hears.wait_heard(1.0)
        assert callee_hears.tone_fraction(440) > 0.5
        assert caller_hears.tone_fraction(660) > 0.5
        await caller.stats()
        await asyncio.sleep(1.0)
        stats = await caller.stats()
        assert stats.send_kbps is not None
        assert stats.send_kbps < 40  # Opus for speech, not aiortc's 96 kbit/s
    finally:
        await caller.close()
        await callee.close()


def test_relay_only_uses_the_relay_alone_where_the_service_gives_one() -> None:
    from aiortc import RTCIceTransportPolicy

    from parley.calling.media import configuration
    from parley.calling.relays import IceServer

    turn = IceServer(("turn:relay.example:443?transport=udp",), "user", "secret")
    stun = IceServer(("stun:stun.example:443",))
    on_aws = IceConfig((stun, turn), loopback=False, expires_at=time.time() + 300)
    hidden = configuration(on_aws, relay_only=True)
    assert hidden.iceTransportPolicy is RTCIceTransportPolicy.RELAY
    assert [s.urls for s in hidden.iceServers or []] == [list(stun.urls), list(turn.urls)]
    assert configuration(on_aws).iceTransportPolicy is RTCIceTransportPolicy.ALL
    # no relay to hide behind (the local stack): direct, as before
    assert configuration(LOOPBACK, relay_only=True).iceTransportPolicy is RTCIceTransportPolicy.ALL
    assert configuration(LOOPBACK).iceServers == []
