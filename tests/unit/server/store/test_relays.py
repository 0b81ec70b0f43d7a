"""The call relay adapters: KVS's STUN and TURN through a pool of signalling
channels, and the local stack's loopback (none).

moto has no Kinesis Video signalling channels (its kinesisvideo backend knows
streams only: CreateStream, DescribeStream, ListStreams, DeleteStream,
GetDataEndpoint) and no kinesis-video-signaling service at all, so the KVS adapter
runs here on real botocore clients answered by `botocore.stub.Stubber`: AWS's own
parameter validation applies to every request, and each test states the exact
requests it expects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from parley_server.models.calls import IceServer
from parley_server.models.errors import ConfigError, DependencyUnavailable
from parley_server.store.relays import (
    KVS_CREDENTIAL_TTL_S,
    KvsRelays,
    LoopbackRelays,
    client_id,
)

REGION = "eu-west-1"
CHANNELS = tuple(
    f"arn:aws:kinesisvideo:{REGION}:123456789012:channel/Parley-dev-call-{n}/16990000000{n}0"
    for n in range(4)
)
NOW = 1_800_000_000.5
DEVICE = "a" * 32 + "#" + "1" * 16
STUN = f"stun:stun.kinesisvideo.{REGION}.amazonaws.com:443"


def _endpoint(channel: str) -> str:
    return f"https://r-{CHANNELS.index(channel)}.kinesisvideo.{REGION}.amazonaws.com"


def _session() -> Any:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@dataclass
class Kvs:
    """A kinesisvideo client and one kinesis-video-signaling client per endpoint,
    each answered by its Stubber; `made` records the endpoints clients were made for."""

    control: Any
    stub: Stubber
    signaling: dict[str, tuple[Any, Stubber]] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)

    def signaling_at(self, endpoint: str) -> Any:
        self.made.append(endpoint)
        return self.at(endpoint)[0]

    def at(self, endpoint: str) -> tuple[Any, Stubber]:
        if endpoint not in self.signaling:
            client = _session().client("kinesis-video-signaling", endpoint_url=endpoint)
            stub = Stubber(client)
            stub.activate()
            self.signaling[endpoint] = (client, stub)
        return self.signaling[endpoint]

    def expect_endpoint(self, channel: str) -> None:
        self.stub.add_response(
            "get_signaling_channel_endpoint",
            {
                "ResourceEndpointList": [
                    {"Protocol": "WSS", "ResourceEndpoint": "wss://v-1.kinesisvideo.example"},
                    {"Protocol": "HTTPS", "ResourceEndpoint": _endpoint(channel)},
                ]
            },
            {
                "ChannelARN": channel,
                "SingleMasterChannelEndpointConfiguration": {
                    "Protocols": ["HTTPS"],
                    "Role": "VIEWER",
                },
            },
        )

    def expect_ice(self, channel: str, servers: list[dict[str, Any]], device: str = DEVICE) -> None:
        _, stub = self.at(_endpoint(channel))
        stub.add_response(
            "get_ice_server_config",
            {"IceServerList": servers},
            {"ChannelARN": channel, "ClientId": client_id(device), "Service": "TURN"},
        )

    def fail_ice(self, channel: str, code: str, status: int = 400) -> None:
        _, stub = self.at(_endpoint(channel))
        stub.add_client_error(
            "get_ice_server_config", service_error_code=code, http_status_code=status
        )

    def relays(self, channels: tuple[str, ...] = CHANNELS) -> KvsRelays:
        return KvsRelays(self.control, self.signaling_at, channels)

    def done(self) -> None:
        self.stub.assert_no_pending_responses()
        for _, stub in self.signaling.values():
            stub.assert_no_pending_responses()


@pytest.fixture
def kvs() -> Iterator[Kvs]:
    control = _session().client("kinesisvideo")
    stub = Stubber(control)
    with stub:
        yield Kvs(control, stub)


def _turn(n: int, ttl: int = KVS_CREDENTIAL_TTL_S) -> dict[str, Any]:
    return {
        "Uris": [
            f"turn:203-0-113-{n}.t-1.kinesisvideo.{REGION}.amazonaws.com:443?transport=udp",
            f"turns:203-0-113-{n}.t-1.kinesisvideo.{REGION}.amazonaws.com:443?transport=udp",
            f"turns:203-0-113-{n}.t-1.kinesisvideo.{REGION}.amazonaws.com:443?transport=tcp",
        ],
        "Username": f"1800000300:user-{n}",
        "Password": f"secret-{n}",
        "Ttl": ttl,
    }


def test_an_offer_is_kvss_stun_server_and_the_turn_servers_of_the_devices_channel(
    kvs: Kvs,
) -> None:
    relays = kvs.relays()
    (channel, fallback) = relays.channels_for(DEVICE)
    assert channel in CHANNELS
    assert fallback == CHANNELS[(CHANNELS.index(channel) + 1) % len(CHANNELS)]
    kvs.expect_endpoint(channel)
    kvs.expect_ice(channel, [_turn(1), _turn(2, ttl=240)])

    offer = relays.offer(DEVICE, now=NOW)

    assert offer.transport == "internet"
    assert offer.ice_servers == (
        IceServer(urls=(STUN,)),
        IceServer(tuple(_turn(1)["Uris"]), "1800000300:user-1", "secret-1"),
        IceServer(tuple(_turn(2)["Uris"]), "1800000300:user-2", "secret-2"),
    )
    # the shortest-lived credentials decide
    assert offer.ttl_s == 240
    assert offer.expires_at == int(NOW) + 240
    assert kvs.made == [_endpoint(channel)]
    kvs.done()


def test_each_channels_endpoint_is_asked_once_for_the_life_of_the_process(kvs: Kvs) -> None:
    relays = kvs.relays()
    channel = relays.channels_for(DEVICE)[0]
    kvs.expect_endpoint(channel)  # once, though three offers follow
    for n in range(3):
        kvs.expect_ice(channel, [_turn(n)])

    offers = [relays.offer(DEVICE, now=NOW + n) for n in range(3)]

    assert [o.ice_servers[1].credential for o in offers] == ["secret-0", "secret-1", "secret-2"]
    kvs.done()


def test_devices_spread_over_the_pool_and_kvs_never_sees_parleys_ids() -> None:
    relays = KvsRelays(_session().client("kinesisvideo"), lambda _: None, CHANNELS)
    devices = [f"{n:032x}#{n:016x}" for n in range(400)]
    first = [relays.channels_for(d)[0] for d in devices]
    counts = [first.count(c) for c in CHANNELS]
    assert all(60 <= n <= 140 for n in counts), counts  # about 100 each
    # the same device, the same channel
    assert relays.channels_for(devices[7]) == relays.channels_for(devices[7])
    who = client_id(DEVICE)
    assert len(who) == 32
    assert "a" * 32 not in who
    assert set(who) <= set("0123456789abcdef")


def test_a_throttled_channel_hands_over_to_the_next_one(kvs: Kvs) -> None:
    relays = kvs.relays()
    channel, fallback = relays.channels_for(DEVICE)
    kvs.expect_endpoint(channel)
    kvs.fail_ice(channel, "ClientLimitExceededException")
    kvs.expect_endpoint(fallback)
    kvs.expect_ice(fallback, [_turn(5)])

    offer = relays.offer(DEVICE, now=NOW)

    assert offer.ice_servers[1].credential == "secret-5"
    kvs.done()


def test_both_channels_throttling_is_a_dependency_unavailable(kvs: Kvs) -> None:
    relays = kvs.relays()
    channel, fallback = relays.channels_for(DEVICE)
    kvs.expect_endpoint(channel)
    kvs.fail_ice(channel, "ClientLimitExceededException")
    kvs.expect_endpoint(fallback)
    kvs.fail_ice(fallback, "ClientLimitExceededException")

    with pytest.raises(DependencyUnavailable) as refused:
        relays.offer(DEVICE, now=NOW)

    assert refused.value.status == 503
    assert refused.value.code == "service_unavailable"
    kvs.done()


def test_a_pool_of_one_has_nothing_to_hand_over_to(kvs: Kvs) -> None:
    relays = kvs.relays(CHANNELS[:1])
    assert relays.channels_for(DEVICE) == CHANNELS[:1]
    kvs.expect_endpoint(CHANNELS[0])
    kvs.fail_ice(CHANNELS[0], "ClientLimitExceededException")

    with pytest.raises(DependencyUnavailable):
        relays.offer(DEVICE, now=NOW)
    kvs.done()


def test_a_failed_credential_request_forgets_the_endpoint_and_asks_for_it_again(
    kvs: Kvs,
) -> None:
    relays = kvs.relays()
    channel = relays.channels_for(DEVICE)[0]
    kvs.expect_endpoint(channel)
    kvs.fail_ice(channel, "ResourceNotFoundException", 404)
    with pytest.raises(DependencyUnavailable):
        relays.offer(DEVICE, now=NOW)

    kvs.expect_endpoint(channel)  # asked again, not taken from the cache
    kvs.expect_ice(channel, [_turn(1)])
    assert relays.offer(DEVICE, now=NOW).ice_servers[1].credential == "secret-1"
    kvs.done()


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "ClientLimitExceededException", "InvalidArgumentException"]
)
def test_the_endpoint_request_failing_is_a_dependency_unavailable(kvs: Kvs, code: str) -> None:
    relays = kvs.relays(CHANNELS[:1])
    kvs.stub.add_client_error("get_signaling_channel_endpoint", service_error_code=code)

    with pytest.raises(DependencyUnavailable):
        relays.offer(DEVICE, now=NOW)
    assert kvs.made == []  # no credentials asked for without an endpoint
    kvs.done()


def test_an_endpoint_answer_without_https_is_a_dependency_unavailable(kvs: Kvs) -> None:
    relays = kvs.relays(CHANNELS[:1])
    kvs.stub.add_response(
        "get_signaling_channel_endpoint",
        {"ResourceEndpointList": [{"Protocol": "WSS", "ResourceEndpoint": "wss://x.example"}]},
    )
    with pytest.raises(DependencyUnavailable):
        relays.offer(DEVICE, now=NOW)
    kvs.done()


def test_no_turn_servers_is_stun_alone_for_kvss_credential_lifetime(kvs: Kvs) -> None:
    relays = kvs.relays()
    channel = relays.channels_for(DEVICE)[0]
    kvs.expect_endpoint(channel)
    kvs.expect_ice(channel, [])

    offer = relays.offer(DEVICE, now=NOW)

    assert offer.ice_servers == (IceServer(urls=(STUN,)),)
    assert offer.ttl_s == KVS_CREDENTIAL_TTL_S
    kvs.done()


def test_a_kvs_pool_needs_a_channel() -> None:
    with pytest.raises(ConfigError):
        KvsRelays(_session().client("kinesisvideo"), lambda _: None, ())


def test_loopback_offers_no_server_at_all() -> None:
    offer = LoopbackRelays().offer(DEVICE, now=NOW)
    assert offer.ice_servers == ()
    assert offer.transport == "loopback"
    assert (offer.ttl_s, offer.expires_at) == (300, int(NOW) + 300)
