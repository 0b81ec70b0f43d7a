"""A call's media: one WebRTC peer connection (aiortc), Opus audio and, when
asked, VP8 video, over DTLS-SRTP.

The SDP this produces goes inside the end-to-end encryption (parley.calling
signals), so the DTLS fingerprint in it is the one the other device checks the
media connection against: aiortc refuses a DTLS peer whose certificate does not
match the fingerprint of the SDP it was given.

ICE gathers the addresses the service's relays answer allows
(`parley.calling.relays`): on the local stack that is loopback only. aioice skips
127.0.0.1 and gathers every other interface; a loopback call must not use them
(they are this machine's real network), so while a loopback session gathers,
its host addresses are exactly 127.0.0.1.

Needs the calls extra: `pip install './client[calls]'`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import aioice.ice
import aiortc.rtcrtpsender
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from parley.calling.audio import AudioSink, Discard, Silence, TestPattern, VideoSink
from parley.calling.relays import IceConfig
from parley.content.calls import Candidate
from parley.models import CallStats

__all__ = ["MediaSession", "configuration"]

log = logging.getLogger("parley.calling")

_LOOPBACK: contextvars.ContextVar[bool] = contextvars.ContextVar("parley_loopback", default=False)
_host_addresses = aioice.ice.get_host_addresses


def _addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _LOOPBACK.get():
        return ["127.0.0.1"] if use_ipv4 else []
    return _host_addresses(use_ipv4, use_ipv6)


aioice.ice.get_host_addresses = _addresses  # the loopback rule, for sessions that ask

# Opus for speech: aiortc encodes at 96 kbit/s (music quality); a voice call needs
# about a fifth of that (Parley's design: Opus around 20 kbit/s). libopus keeps
# to it at 16 or 20 kbit/s; asked for 24 kbit/s it sent 43 here (bench/calls.py
# measures what goes out).
VOICE_BITRATE = 20_000
_get_encoder = aiortc.rtcrtpsender.get_encoder  # type: ignore[attr-defined]


def _encoder(codec: Any) -> Any:
    encoder = _get_encoder(codec)
    if codec.mimeType.lower() == "audio/opus":
        encoder.codec.bit_rate = VOICE_BITRATE  # type: ignore[attr-defined]
    return encoder


aiortc.rtcrtpsender.get_encoder = _encoder  # type: ignore[attr-defined]


@contextlib.contextmanager
def _gathering(loopback: bool) -> Iterator[None]:
    token = _LOOPBACK.set(loopback)
    try:
        yield
    finally:
        _LOOPBACK.reset(token)


def configuration(ice: IceConfig, *, relay_only: bool = False) -> RTCConfiguration:
    """The peer connection's ICE configuration. `relay_only`: offer no address of this
    device's own, only the TURN relay's (where the service hands out a relay: on
    loopback there is none, and nothing to hide)."""
    servers = [RTCIceServer(list(s.urls), s.username, s.credential) for s in ice.servers]
    relayed = any(url.startswith(("turn:", "turns:")) for s in ice.servers for url in s.urls)
    if relay_only and not relayed and not ice.loopback:
        log.warning("no TURN relay to hide this device's addresses behind: using direct ones")
    policy = RTCIceTransportPolicy.RELAY if relay_only and relayed else RTCIceTransportPolicy.ALL
    # no servers: none at all (aiortc would otherwise add a public STUN server)
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


class MediaSession:
    """One call's peer connection: offer or answer, then media until `close`."""

    def __init__(
        self,
        ice: IceConfig,
        *,
        video: bool = False,
        audio_source: MediaStreamTrack | None = None,
        audio_sink: AudioSink | None = None,
        video_source: MediaStreamTrack | None = None,
        video_sink: VideoSink | None = None,
        on_state: Callable[[str], None] = lambda _state: None,
        relay_only: bool = False,
    ) -> None:
        self._pc = RTCPeerConnection(configuration(ice, relay_only=relay_only))
        self._loopback = ice.loopback
        self.video = video
        self._audio_source = audio_source or Silence()
        self._audio_sink: AudioSink = audio_sink or Discard()
        self._video_source = (video_source or TestPattern()) if video else None
        self._video_sink: VideoSink = video_sink or Discard()
        self._sinks: list[asyncio.Task[None]] = []
        self._on_state = on_state
        self._last: tuple[float, int, int] | None = None
        self.connected = asyncio.Event()
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._state_changed)

    @property
    def state(self) -> str:
        return str(self._pc.connectionState)

    def _add_tracks(self) -> None:
        self._pc.addTrack(self._audio_source)
        if self._video_source is not None:
            self._pc.addTrack(self._video_source)

    async def offer(self) -> str:
        """The caller's SDP, with every candidate gathered."""
        self._add_tracks()
        with _gathering(self._loopback):
            await self._pc.setLocalDescription(await self._pc.createOffer())
        return str(self._pc.localDescription.sdp)

    async def answer(self, offer_sdp: str) -> str:
        """The callee's SDP for the caller's offer."""
        await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        self._add_tracks()
        with _gathering(self._loopback):
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        return str(self._pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        """The caller takes the callee's answer: ICE and DTLS start."""
        await self._pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def add_candidates(self, candidates: tuple[Candidate, ...]) -> None:
        """Candidates the other side trickled (this SDK puts all of its own in the SDP)."""
        for item in candidates:
            candidate = candidate_from_sdp(item.candidate.removeprefix("candidate:"))
            candidate.sdpMid = item.mid
            candidate.sdpMLineIndex = item.index
            await self._pc.addIceCandidate(candidate)

    def _on_track(self, track: MediaStreamTrack) -> None:
        sink = self._audio_sink if track.kind == "audio" else self._video_sink
        self._sinks.append(asyncio.ensure_future(sink.consume(track)))

    def _state_changed(self) -> None:
        state = self.state
        log.info("call media: %s", state)
        if state == "connected":
            self.connected.set()
        self._on_state(state)

    async def stats(self) -> CallStats:
        """RTT, loss and bitrates now (bitrates over the time since the last call)."""
        report = await self._pc.getStats()
        sent = received = packets_sent = packets_received = lost = 0
        rtts: list[float] = []
        for item in report.values():
            kind = getattr(item, "type", "")
            if kind == "outbound-rtp":
                sent += int(item.bytesSent)
                packets_sent += int(item.packetsSent)
            elif kind == "remote-outbound-rtp":
                received += int(item.bytesSent)
            elif kind == "inbound-rtp":
                packets_received += int(item.packetsReceived)
                lost += max(0, int(item.packetsLost))
            elif kind == "remote-inbound-rtp" and item.roundTripTime is not None:
                rtts.append(float(item.roundTripTime))
        now = time.monotonic()
        send_kbps = receive_kbps = None
        if self._last is not None and now > self._last[0]:
            elapsed = now - self._last[0]
            send_kbps = (sent - self._last[1]) * 8 / elapsed / 1000
            receive_kbps = (received - self._last[2]) * 8 / elapsed / 1000
        self._last = (now, sent, received)
        return CallStats(
            rtt_ms=max(rtts) * 1000 if rtts else None,
            packets_sent=packets_sent,
            packets_received=packets_received,
            packets_lost=lost,
            bytes_sent=sent,
            bytes_received=received,
            send_kbps=send_kbps,
            receive_kbps=receive_kbps,
        )

    async def close(self) -> None:
        """Stop media and release the sources, sinks and sockets."""
        await self._pc.close()
        for source in (self._audio_source, self._video_source):
            if source is not None:
                source.stop()
        for task in self._sinks:
            task.cancel()
        for task in self._sinks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sink in {id(s): s for s in (self._audio_sink, self._video_sink)}.values():
            with contextlib.suppress(Exception):
                await sink.close()


def describe(stats: CallStats) -> dict[str, Any]:
    """Stats as plain figures (for a CLI or a log line)."""
    return {
        "rtt_ms": None if stats.rtt_ms is None else round(stats.rtt_ms, 1),
        "loss": round(stats.loss, 4),
        "send_kbps": None if stats.send_kbps is None else round(stats.send_kbps, 1),
        "receive_kbps": None if stats.receive_kbps is None else round(stats.receive_kbps, 1),
    }
