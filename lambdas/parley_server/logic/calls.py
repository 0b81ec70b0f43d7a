"""The call use cases the server has a part in: handing a device the ICE servers
(STUN, and TURN with short-lived credentials) it needs to reach the other party.

Everything else about a call travels end to end encrypted as ephemeral sends
(logic/messaging.py): the server sees messages between two accounts, a `ring`
flag on the first, and that a device asked for relays; it is not told what was
said or that it was a call (docs/SECURITY.md, "Calls").
"""

from __future__ import annotations

from typing import Protocol

from parley_server.config import Limits
from parley_server.logic.ports import Caller, LimiterPort
from parley_server.models.calls import RelayOffer

__all__ = ["RelaysPort", "limit_relays", "relays_for"]


class RelaysPort(Protocol):
    def offer(self, device_key: str, *, now: float) -> RelayOffer:
        """ICE servers for the device `device_key` names (opaque, stable per device)."""
        ...


def limit_relays(caller: Caller, *, limits: Limits, limiter: LimiterPort, now: float) -> None:
    """Count one relay request of the caller's device (RateLimited past the hourly
    budget): each is TURN credentials from a pool of signalling channels whose rate
    is shared by everyone (docs/SCALE.md, call relays)."""
    limiter.hit(
        "call-relays",
        f"{caller.user_id}#{caller.device_id}",
        limit=limits.call_relays_per_hour,
        window_s=3600,
        now=now,
    )


def relays_for(
    caller: Caller, *, relays: RelaysPort, limiter: LimiterPort, limits: Limits, now: float
) -> RelayOffer:
    """The ICE servers for one call of the caller's device (rate limited first, so a
    refused request costs no relay call)."""
    limit_relays(caller, limits=limits, limiter=limiter, now=now)
    return relays.offer(f"{caller.user_id}#{caller.device_id}", now=now)
