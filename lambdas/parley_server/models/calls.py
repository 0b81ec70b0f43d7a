"""Calls: the ICE servers a device may use to reach the other party (GET /v1/calls/relays).

Value types only: the relay adapters (store/relays.py) make them, the use case
(logic/calls.py) hands them out, the HTTP route answers them in the W3C
RTCIceServer shape, so a WebRTC client passes `ice_servers` straight to its
RTCPeerConnection.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["IceServer", "RelayOffer", "Transport"]

# "internet": STUN and TURN servers reachable from anywhere; "loopback": none (the
# local stack, where both parties run on one machine and reach each other directly)
Transport = Literal["internet", "loopback"]


class IceServer(msgspec.Struct, frozen=True):
    """One RTCIceServer: its URLs (stun:, turn:, turns:) and, for TURN, the
    short-lived credentials that open an allocation."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


class RelayOffer(msgspec.Struct, frozen=True):
    """The ICE servers of one call set-up, and how long their credentials live."""

    ice_servers: tuple[IceServer, ...]
    ttl_s: int  # seconds the credentials stay valid from `expires_at - ttl_s`
    expires_at: int  # epoch seconds
    transport: Transport
