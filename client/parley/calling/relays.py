"""Where a call's media may go: the ICE servers `GET /v1/calls/relays` hands out.

On AWS the service answers a STUN server and TURN relays (Amazon Kinesis Video
Streams) with credentials that live a few minutes; a call fetches them when it
starts. The local stack answers "loopback": no servers, and this machine's
loopback address as the only place media may flow (parley.calling.media makes
WebRTC gather just that).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from parley.errors import ParleyClientError

__all__ = ["IceConfig", "IceServer", "parse_relays"]

_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server, with W3C RTCIceServer's fields."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class IceConfig:
    """The ICE servers for one call, and whether media stays on loopback."""

    servers: tuple[IceServer, ...] = field(default=())
    loopback: bool = False
    expires_at: float = 0.0

    def fresh(self, now: float | None = None) -> bool:
        """Whether the credentials still have a minute left."""
        return (now if now is not None else time.time()) < self.expires_at - 60


def _text(value: object, what: str, limit: int = 512) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ParleyClientError(f"the service's relays answer has a bad {what}")
    return value


def parse_relays(answer: Any, now: float | None = None) -> IceConfig:
    """The service's answer, checked: ParleyClientError if it is not what the API says."""
    now = time.time() if now is None else now
    if not isinstance(answer, dict):
        raise ParleyClientError("the service's relays answer is not an object")
    transport = answer.get("transport")
    if transport not in ("internet", "loopback"):
        raise ParleyClientError("the service's relays answer has no usable transport")
    raw = answer.get("ice_servers")
    if not isinstance(raw, list) or len(raw) > 16:
        raise ParleyClientError("the service's relays answer has no list of ICE servers")
    servers: list[IceServer] = []
    for item in raw:
        if not isinstance(item, dict):
            raise ParleyClientError("an ICE server in the relays answer is not an object")
        urls = item.get("urls")
        urls = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls, list) or not 0 < len(urls) <= 8:
            raise ParleyClientError("an ICE server in the relays answer has no urls")
        checked = tuple(_text(url, "server url") for url in urls)
        if not all(url.startswith(_SCHEMES) for url in checked):
            raise ParleyClientError("an ICE server url is not stun:, stuns:, turn: or turns:")
        username, credential = item.get("username"), item.get("credential")
        servers.append(
            IceServer(
                checked,
                None if username is None else _text(username, "username"),
                None if credential is None else _text(credential, "credential"),
            )
        )
    ttl = answer.get("ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= 86_400:
        raise ParleyClientError("the service's relays answer has no usable ttl")
    return IceConfig(tuple(servers), transport == "loopback", now + ttl)
