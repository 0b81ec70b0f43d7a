"""ICE servers for calls: Amazon Kinesis Video Streams' STUN and TURN, or none.

`KvsRelays` hands out the TURN servers of a pool of Kinesis Video signalling
channels (SINGLE_MASTER, made by stacks/calls.py). Only their TURN service is
used: Parley does its own signalling, end to end encrypted, as ephemeral sends.
A device's requests go to one channel of the pool (a hash of the device, so the
pool's load spreads evenly) and, if that channel is throttling, to the next one.
For each channel the process asks once for its HTTPS endpoint
(kinesisvideo:GetSignalingChannelEndpoint, as a VIEWER: the role whose client id
GetIceServerConfig takes; nobody ever connects as the master) and keeps it; then
each request is one kinesis-video-signaling:GetIceServerConfig at that endpoint,
for the TURN servers and their credentials (which live 300 s). The STUN server
needs no credentials: stun:stun.kinesisvideo.<region>.amazonaws.com:443.

The client id KVS takes is a digest of the device, so KVS never sees Parley's
user or device ids.

`LoopbackRelays` is the local stack's: no servers at all. Both parties run on one
machine, so host candidates on loopback connect them; offering a STUN or TURN
server there would only pretend.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from parley_server.models.calls import IceServer, RelayOffer
from parley_server.models.errors import ConfigError, DependencyUnavailable

__all__ = ["KVS_CREDENTIAL_TTL_S", "LOOPBACK_TTL_S", "KvsRelays", "LoopbackRelays", "client_id"]

logger = Logger(child=True)

# How long KVS's TURN credentials live (its IceServer.Ttl is a fixed 300)
KVS_CREDENTIAL_TTL_S = 300
# The loopback offer has no credentials; a client asks again after as long
LOOPBACK_TTL_S = 300
# KVS's answers to a caller over a channel's request rate
_THROTTLED = frozenset({"ClientLimitExceededException", "ThrottlingException"})
_UNAVAILABLE = "call relays unavailable; retry"


def client_id(device_key: str) -> str:
    """The opaque, stable id of a device that KVS sees (its ClientId pattern:
    [a-zA-Z0-9_.-]+)."""
    return hashlib.sha256(device_key.encode()).hexdigest()[:32]


class LoopbackRelays:
    """No ICE servers: the local stack, where peers reach each other on loopback."""

    def offer(self, device_key: str, *, now: float) -> RelayOffer:
        return RelayOffer(
            ice_servers=(),
            ttl_s=LOOPBACK_TTL_S,
            expires_at=int(now) + LOOPBACK_TTL_S,
            transport="loopback",
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class KvsRelays:
    """STUN and TURN of a pool of Kinesis Video signalling channels."""

    def __init__(
        self, kinesisvideo: Any, signaling: Callable[[str], Any], channels: Sequence[str]
    ) -> None:
        """`kinesisvideo`: a boto3 client; `signaling`: a kinesis-video-signaling client
        at a channel's HTTPS endpoint; `channels`: the pool's ARNs."""
        if not channels:
            raise ConfigError("call relays need at least one signalling channel")
        self._kvs = kinesisvideo
        self._signaling = signaling
        self._channels = tuple(channels)
        # channel ARN -> its HTTPS endpoint, for the life of the process
        self._endpoints: dict[str, str] = {}
        region = kinesisvideo.meta.region_name
        self._stun = IceServer(urls=(f"stun:stun.kinesisvideo.{region}.amazonaws.com:443",))

    def channels_for(self, device_key: str) -> tuple[str, ...]:
        """The channels a device's request tries, in order: its own, then the next."""
        count = len(self._channels)
        first = int(client_id(device_key), 16) % count
        return tuple(self._channels[(first + i) % count] for i in range(min(count, 2)))

    def offer(self, device_key: str, *, now: float) -> RelayOffer:
        who = client_id(device_key)
        tried = self.channels_for(device_key)
        for channel in tried:
            try:
                listed = self._ice_servers(channel, who)
            except ClientError as exc:
                code = _code(exc)
                if code in _THROTTLED and channel != tried[-1]:
                    logger.info(
                        "call relay channel throttled; trying the next", extra={"code": code}
                    )
                    continue
                logger.warning("call relays unavailable", extra={"error_code": code})
                raise DependencyUnavailable(_UNAVAILABLE) from exc
            except BotoCoreError as exc:
                logger.warning("call relays unreachable", extra={"error": type(exc).__name__})
                raise DependencyUnavailable(_UNAVAILABLE) from exc
            return self._offer(listed, now)
        raise DependencyUnavailable(_UNAVAILABLE)  # not reached: the last channel raises

    def _offer(self, listed: list[dict[str, Any]], now: float) -> RelayOffer:
        turn = tuple(
            IceServer(
                urls=tuple(server["Uris"]),
                username=server.get("Username"),
                credential=server.get("Password"),
            )
            for server in listed
            if server.get("Uris")
        )
        ttls = [int(s["Ttl"]) for s in listed if s.get("Uris") and s.get("Ttl")]
        ttl = min(ttls, default=KVS_CREDENTIAL_TTL_S)
        return RelayOffer(
            ice_servers=(self._stun, *turn),
            ttl_s=ttl,
            expires_at=int(now) + ttl,
            transport="internet",
        )

    def _ice_servers(self, channel: str, who: str) -> list[dict[str, Any]]:
        endpoint = self._endpoint(channel)
        try:
            answer = self._signaling(endpoint).get_ice_server_config(
                ChannelARN=channel, ClientId=who, Service="TURN"
            )
        except ClientError as exc:
            if _code(exc) not in _THROTTLED:
                # the endpoint may have moved: ask for it again next time
                self._endpoints.pop(channel, None)
            raise
        listed: list[dict[str, Any]] = answer.get("IceServerList", [])
        return listed

    def _endpoint(self, channel: str) -> str:
        found = self._endpoints.get(channel)
        if found is not None:
            return found
        answer = self._kvs.get_signaling_channel_endpoint(
            ChannelARN=channel,
            SingleMasterChannelEndpointConfiguration={"Protocols": ["HTTPS"], "Role": "VIEWER"},
        )
        for entry in answer.get("ResourceEndpointList", []):
            if entry.get("Protocol") == "HTTPS" and entry.get("ResourceEndpoint"):
                endpoint = str(entry["ResourceEndpoint"])
                self._endpoints[channel] = endpoint
                return endpoint
        raise DependencyUnavailable(_UNAVAILABLE)
