"""Calls: a pool of Kinesis Video Streams signalling channels whose TURN servers
relay calls that cannot go peer to peer.

Only KVS's STUN and TURN are used (GET /v1/calls/relays, store/relays.py): call
signalling itself travels end to end encrypted as ephemeral sends over the
WebSocket, so nobody ever connects to these channels. Each channel serves a
limited rate of TURN credentials and number of allocations (docs/SCALE.md, call
relays), so there is a pool of them, `callRelayChannels` in the CDK context.

The HttpApi function may ask exactly two things of exactly these channels: their
HTTPS endpoint, and TURN credentials.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisvideo as kinesisvideo
from constructs import Construct

from stacks.settings import call_channel_name

__all__ = ["RELAY_ACTIONS", "CallRelays"]

# What handing out relays needs (store/relays.py), on the pool's channels only.
RELAY_ACTIONS = ("kinesisvideo:GetSignalingChannelEndpoint", "kinesisvideo:GetIceServerConfig")


class CallRelays(Construct):
    """`channels` SINGLE_MASTER signalling channels, named <stack>-call-<n>."""

    def __init__(self, scope: Construct, construct_id: str, *, channels: int, prefix: str) -> None:
        super().__init__(scope, construct_id)
        if channels < 1:
            raise ValueError("call relays need at least one signalling channel")
        # Named, and shortly: the function's environment carries every ARN (which
        # embeds the name) and Lambda allows 4 KB of environment in all
        # (stacks/settings.py, CALL_CHANNELS_BUDGET).
        self.channels = [
            kinesisvideo.CfnSignalingChannel(
                self, f"Channel{n}", name=call_channel_name(prefix, n), type="SINGLE_MASTER"
            )
            for n in range(channels)
        ]

    @property
    def arns(self) -> list[str]:
        return [channel.attr_arn for channel in self.channels]

    def channels_json(self) -> str:
        """PARLEY_CALL_CHANNELS: the pool's ARNs as a JSON list (resolved at deploy)."""
        json_list: str = Stack.of(self).to_json_string(self.arns)
        return json_list

    def grant_relays(self, grantee: iam.IGrantable) -> iam.Grant:
        """The channels' HTTPS endpoint and TURN credentials, and nothing else."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(RELAY_ACTIONS), resource_arns=self.arns
        )
