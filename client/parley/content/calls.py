"""Call signalling: what two devices say to set up, run and end a call. Like
every message it travels inside the end-to-end encryption (the service sees
an ephemeral `send`, never which of these it is):

    {"v":1,"kind":"call","type":"offer","call":<id>,"sdp":…,"fingerprint":"sha-256 AB:…",
     "video":false}
    {"v":1,"kind":"call","type":"answer","call":<id>,"sdp":…,"fingerprint":"sha-256 …"}
    {"v":1,"kind":"call","type":"ice","call":<id>,
     "candidates":[{"candidate":"candidate:…","mid":"0","index":0}]}
    {"v":1,"kind":"call","type":"ringing","call":<id>}
    {"v":1,"kind":"call","type":"busy","call":<id>}
    {"v":1,"kind":"call","type":"hangup","call":<id>,"reason":"normal","device"?:<device id>}

A signal sent to one's own other devices (the caller's copy of its offer and
hang-up; the callee's "answered elsewhere" or "declined" to its siblings) also
names the other party: `"peer":<user id>`. A hang-up with `device` is meant
for that one device of the recipient (the caller telling a device that lost
the race to answer); in a caller's copy to its own devices, `device` is the
callee's device that had answered (none: nobody answered).

The offer and answer carry the DTLS fingerprint of the sender's media
certificate twice: in the SDP and as `fingerprint`. Both must agree, and the
media connection is accepted only from the certificate they name, so neither
the service nor a relay can put itself between the two devices.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from parley.content.errors import ContentError
from parley.content.fields import VERSION
from parley.ids import is_device_id, is_user_id

__all__ = [
    "CALL_KIND",
    "HANGUP_REASONS",
    "SIGNAL_TYPES",
    "CallSignal",
    "Candidate",
    "HangupReason",
    "SignalType",
    "fingerprint_of",
    "new_call_id",
    "parse_signal",
]

CALL_KIND: Final = "call"
SignalType = Literal["offer", "answer", "ice", "ringing", "busy", "hangup"]
SIGNAL_TYPES: Final[tuple[SignalType, ...]] = (
    "offer",
    "answer",
    "ice",
    "ringing",
    "busy",
    "hangup",
)
HangupReason = Literal["normal", "declined", "busy", "answered_elsewhere", "timeout", "failed"]
HANGUP_REASONS: Final[tuple[HangupReason, ...]] = (
    "normal",
    "declined",
    "busy",
    "answered_elsewhere",
    "timeout",
    "failed",
)
# An SDP with audio, video and their candidates is a few KB; this bounds a hostile one.
MAX_SDP_CHARS: Final = 32_000
MAX_CANDIDATES: Final = 32
MAX_CANDIDATE_CHARS: Final = 512
_CALL_ID: Final = re.compile(r"[0-9a-f]{32}")
# RFC 8122: "a=fingerprint:<hash function> <hex pairs joined by colons>"
_FINGERPRINT: Final = re.compile(r"sha-256 (?:[0-9A-F]{2}:){31}[0-9A-F]{2}")
_SDP_FINGERPRINT: Final = re.compile(
    r"^a=fingerprint:(\S+)\s+(\S+)\s*$", re.MULTILINE | re.IGNORECASE
)
_FIELDS: Final[dict[str, frozenset[str]]] = {
    "offer": frozenset({"sdp", "fingerprint", "video"}),
    "answer": frozenset({"sdp", "fingerprint"}),
    "ice": frozenset({"candidates"}),
    "ringing": frozenset(),
    "busy": frozenset(),
    "hangup": frozenset({"reason", "device"}),
}
_COMMON: Final = frozenset({"v", "kind", "type", "call", "peer"})


def new_call_id() -> str:
    import secrets

    return secrets.token_hex(16)


@dataclass(frozen=True)
class Candidate:
    """One ICE candidate, as a trickling peer sends it (RFC 8839's attribute value)."""

    candidate: str
    mid: str | None = None
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "mid": self.mid, "index": self.index}


@dataclass(frozen=True)
class CallSignal:
    """One call signal; `call` is the call's id (32 hex characters, the caller's)."""

    type: SignalType
    call: str
    sdp: str | None = None
    fingerprint: str | None = None
    video: bool = False
    candidates: tuple[Candidate, ...] = field(default=())
    reason: HangupReason | None = None
    # a hang-up meant for this device of the recipient only; in a caller's copy to
    # its own devices, the callee's device that had answered
    device: str | None = None
    peer: str | None = None  # in a copy to one's own devices: the other party

    def __post_init__(self) -> None:
        _check(self)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "kind": CALL_KIND, "type": self.type}
        out["call"] = self.call
        if self.type in ("offer", "answer"):
            out["sdp"] = self.sdp
            out["fingerprint"] = self.fingerprint
        if self.type == "offer":
            out["video"] = self.video
        if self.type == "ice":
            out["candidates"] = [c.to_dict() for c in self.candidates]
        if self.type == "hangup":
            out["reason"] = self.reason
            if self.device is not None:
                out["device"] = self.device
        if self.peer is not None:
            out["peer"] = self.peer
        return out

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def fingerprint_of(sdp: str) -> str:
    """The SHA-256 DTLS fingerprint an SDP names ("sha-256 AB:CD:…"): every media
    section must name the same one (other hash functions may be listed too: the
    media connection is checked against all of them). ContentError if there is no
    SHA-256 fingerprint, or more than one."""
    named: dict[str, set[str]] = {}
    for algorithm, value in _SDP_FINGERPRINT.findall(sdp):
        named.setdefault(algorithm.lower(), set()).add(value.upper())
    if any(len(values) > 1 for values in named.values()):
        raise ContentError("the SDP's media sections name different DTLS fingerprints")
    if "sha-256" not in named:
        raise ContentError("the SDP names no SHA-256 DTLS fingerprint")
    fingerprint = f"sha-256 {named['sha-256'].pop()}"
    if _FINGERPRINT.fullmatch(fingerprint) is None:
        raise ContentError("the SDP's DTLS fingerprint is malformed")
    return fingerprint


def _check(signal: CallSignal) -> None:
    if signal.type not in SIGNAL_TYPES:
        raise ContentError(f"unknown call signal {signal.type!r:.20}")
    if not isinstance(signal.call, str) or _CALL_ID.fullmatch(signal.call) is None:
        raise ContentError("a call id is 32 lowercase hex characters")
    if signal.peer is not None and not is_user_id(signal.peer):
        raise ContentError("a call signal's peer must be a user id")
    if signal.type in ("offer", "answer"):
        if not isinstance(signal.sdp, str) or not 0 < len(signal.sdp) <= MAX_SDP_CHARS:
            raise ContentError(f"an {signal.type} needs an SDP of 1 to {MAX_SDP_CHARS} characters")
        fingerprint = signal.fingerprint
        if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
            raise ContentError(f"an {signal.type} needs a DTLS fingerprint like 'sha-256 AB:…'")
        if fingerprint_of(signal.sdp) != signal.fingerprint:
            raise ContentError(f"the {signal.type}'s fingerprint is not the one its SDP names")
    if not isinstance(signal.video, bool):
        raise ContentError("`video` must be true or false")
    if signal.type == "ice" and not 0 < len(signal.candidates) <= MAX_CANDIDATES:
        raise ContentError(f"an ice signal carries 1 to {MAX_CANDIDATES} candidates")
    if signal.type == "hangup":
        if signal.reason not in HANGUP_REASONS:
            raise ContentError(f"unknown hang-up reason {signal.reason!r:.30}")
        if signal.device is not None and not is_device_id(signal.device):
            raise ContentError("a hang-up's device must be a device id")
    elif signal.device is not None:
        raise ContentError("only a hang-up names a device")


def _candidate(raw: object) -> Candidate:
    if not isinstance(raw, Mapping) or not set(raw) <= {"candidate", "mid", "index"}:
        raise ContentError("an ICE candidate is an object of candidate, mid and index")
    text, mid, index = raw.get("candidate"), raw.get("mid"), raw.get("index")
    if not isinstance(text, str) or not 0 < len(text) <= MAX_CANDIDATE_CHARS:
        raise ContentError(f"an ICE candidate is 1 to {MAX_CANDIDATE_CHARS} characters")
    if not text.startswith("candidate:") or any(ch in text for ch in "\r\n\x00"):
        raise ContentError("an ICE candidate starts 'candidate:' and is one line")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise ContentError("an ICE candidate's mid is a short string")
    bad_index = isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 64
    if index is not None and bad_index:
        raise ContentError("an ICE candidate's index is a small integer")
    return Candidate(text, mid, index)


def parse_signal(data: Mapping[str, Any]) -> CallSignal:
    """Untrusted call JSON -> a CallSignal, or ContentError."""
    if data.get("v") != VERSION or isinstance(data.get("v"), bool) or data.get("kind") != CALL_KIND:
        raise ContentError("not a call signal")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ContentError(f"unknown call signal {kind!r:.20}")
    allowed = _COMMON | _FIELDS[kind]
    if not set(data) <= allowed:
        raise ContentError(f"a call {kind} with unknown fields")
    required = {"call"} | (_FIELDS[kind] - {"device"})
    if not required <= set(data):
        raise ContentError(f"a call {kind} needs {', '.join(sorted(required))}")
    candidates = data.get("candidates", [])
    if not isinstance(candidates, list):
        raise ContentError("`candidates` must be a list")
    if len(candidates) > MAX_CANDIDATES:
        raise ContentError(f"an ice signal carries at most {MAX_CANDIDATES} candidates")
    return CallSignal(
        type=kind,  # type: ignore[arg-type]  # checked against SIGNAL_TYPES above
        call=data["call"],
        sdp=data.get("sdp"),
        fingerprint=data.get("fingerprint"),
        video=data.get("video", False),
        candidates=tuple(_candidate(c) for c in candidates),
        reason=data.get("reason"),
        device=data.get("device"),
        peer=data.get("peer"),
    )
