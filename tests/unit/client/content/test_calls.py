"""Call signals: what a device accepts inside the encryption, and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.content import ContentError
from parley.content.calls import CallSignal, Candidate, fingerprint_of, parse_signal
from parley.conversations import payload

CALL = "ab" * 16
FP = "sha-256 " + ":".join(["0F"] * 32)
OTHER_FP = "sha-256 " + ":".join(["A1"] * 32)
SDP = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"
    f"a=fingerprint:{FP}\r\n"
    "a=fingerprint:sha-384 " + ":".join(["11"] * 48) + "\r\n"
)


def doc(**fields: Any) -> dict[str, Any]:
    return {"v": 1, "kind": "call", "call": CALL, **fields}


def test_every_signal_round_trips_through_the_payload() -> None:
    signals = [
        CallSignal("offer", CALL, sdp=SDP, fingerprint=FP, video=True),
        CallSignal("answer", CALL, sdp=SDP, fingerprint=FP),
        CallSignal(
            "ice", CALL, candidates=(Candidate("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0),)
        ),
        CallSignal("ringing", CALL),
        CallSignal("busy", CALL),
        CallSignal("hangup", CALL, reason="answered_elsewhere", device="1" * 16),
        CallSignal("hangup", CALL, reason="timeout", peer="c" * 32),
    ]
    for signal in signals:
        assert payload.decode_any(signal.encode()) == signal


def test_the_fingerprint_is_the_sdps_sha256_one() -> None:
    assert fingerprint_of(SDP) == FP
    assert fingerprint_of(SDP.replace(FP, FP.lower().replace("sha-256", "SHA-256"))) == FP
    with pytest.raises(ContentError, match="no SHA-256"):
        fingerprint_of("v=0\r\n")
    with pytest.raises(ContentError, match="different DTLS fingerprints"):
        fingerprint_of(SDP + f"m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=fingerprint:{OTHER_FP}\r\n")
    # however it is spaced (WebRTC reads any whitespace), each section must agree
    spaced = OTHER_FP.replace(" ", "  ")
    with pytest.raises(ContentError, match="different DTLS fingerprints"):
        fingerprint_of(SDP + f"m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=fingerprint:{spaced}\r\n")


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (doc(type="offer", sdp=SDP, fingerprint=OTHER_FP, video=False), "not the one its SDP"),
        (doc(type="offer", sdp=SDP, video=False), "needs"),
        (doc(type="offer", sdp=SDP, fingerprint=FP, video="yes"), "true or false"),
        (doc(type="answer", sdp="", fingerprint=FP), "SDP of 1"),
        (doc(type="answer", sdp="x" * 40_000, fingerprint=FP), "SDP of 1"),
        (doc(type="dial"), "unknown call signal"),
        (doc(type="ringing", extra=1), "unknown fields"),
        (doc(type="hangup", reason="bored"), "unknown hang-up reason"),
        (doc(type="hangup", reason="normal", device="nope"), "device id"),
        (doc(type="busy", device="1" * 16), "unknown fields"),
        (doc(type="ice", candidates=[]), "1 to 32"),
        (doc(type="ice", candidates=[{"candidate": "candidate:1\r\na=evil"}]), "one line"),
        (doc(type="ice", candidates=[{"candidate": "x"}]), "starts 'candidate:'"),
        (doc(type="ice", candidates=[{"candidate": "candidate:1", "index": True}]), "index"),
        (doc(type="ice", candidates="candidate:1"), "must be a list"),
        (doc(type="ringing", peer="me"), "peer"),
        ({"v": 1, "kind": "call", "type": "ringing", "call": "XYZ"}, "32 lowercase hex"),
        ({"v": 2, "kind": "call", "type": "ringing", "call": CALL}, "not a call signal"),
    ],
)
def test_a_malformed_signal_is_unsupported_content(document: dict[str, Any], why: str) -> None:
    with pytest.raises(ContentError, match=why):
        parse_signal(document)
    with pytest.raises(payload.UnsupportedContent, match="call signal"):
        payload.decode_any(json.dumps(document).encode())


def test_a_signal_cannot_hide_in_a_sent_copy() -> None:
    copy = {
        "v": 1,
        "kind": "sent",
        "to": "c" * 32,
        "id": "x1",
        "content": CallSignal("ringing", CALL).to_dict(),
    }
    with pytest.raises(payload.UnsupportedContent, match="without content"):
        payload.decode_any(json.dumps(copy).encode())
