"""GET /v1/calls/relays through the HttpApi handler, with the function's exact
environment and IAM policy: the local stack's loopback answer, the per-device
budget, a caller without a token, and the kvs mode end to end (the handler, the
wiring, the adapter and the IAM grant) with Kinesis Video's clients answered by
botocore Stubbers, since moto has no signalling channels (tests/unit/server/store/
test_relays.py says more)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from local.iam import enforce
from local.iam.template import load_snapshot, resolve
from parley_server import wiring
from parley_server.catalogue import HTTP_ROUTES, Setting
from parley_server.store.aws import client as aws_client
from parley_server.store.relays import client_id
from tests.conftest import REGION, FakeAws
from tests.integration.test_http_harness import ALICE, BOB, Device, call, sign_up

pytestmark = pytest.mark.usefixtures("http_env")

ROUTE = "/v1/calls/relays"
# as many channels as the synthesized stack has (its default pool), so each stands
# for one of the policy's channels
CHANNELS = [
    f"arn:aws:kinesisvideo:{REGION}:123456789012:channel/Parley-dev-call-{n}/1699000000{n}00"
    for n in range(4)
]


@pytest.fixture
def alice() -> Device:
    return sign_up(ALICE)


def test_the_route_is_in_the_catalogue() -> None:
    assert f"GET {ROUTE}" in HTTP_ROUTES


def test_the_local_stack_offers_no_relay_peers_on_loopback_need_none(alice: Device) -> None:
    answer = call("GET", ROUTE, token=alice.access_token)

    assert answer.status == 200, answer.body
    assert answer.headers["cache-control"] == "no-store"
    body = answer.body
    assert set(body) == {"ice_servers", "ttl", "expires_at", "transport"}
    assert (body["ice_servers"], body["transport"], body["ttl"]) == ([], "loopback", 300)
    assert isinstance(body["expires_at"], int)


def test_without_a_token_nothing_is_handed_out() -> None:
    answer = call("GET", ROUTE)
    assert answer.status == 401
    assert answer.body["error"]["code"] == "unauthorized"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    forged = call("GET", ROUTE, token="not-a-token")
    assert forged.status == 401


def test_a_device_may_ask_only_so_often_an_hour(
    aws: FakeAws, function_env: Any, alice: Device
) -> None:
    aws.settings[Setting.LIMITS] = json.dumps({"call_relays_per_hour": 2})
    function_env("HttpApi")
    for _ in range(2):
        assert call("GET", ROUTE, token=alice.access_token).status == 200

    refused = call("GET", ROUTE, token=alice.access_token)

    assert refused.status == 429
    assert refused.body["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    # the budget is the device's: someone else still gets relays
    bob = sign_up(BOB)
    assert call("GET", ROUTE, token=bob.access_token).status == 200


# -- kvs mode ---------------------------------------------------------------------------


class Kvs:
    """Kinesis Video's two clients, as the wiring asks store.aws for them, stubbed."""

    def __init__(self) -> None:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.session = session
        self.control = session.client("kinesisvideo")
        self.stub = Stubber(self.control)
        self.signaling: dict[str, tuple[Any, Stubber]] = {}

    def at(self, endpoint: str) -> tuple[Any, Stubber]:
        if endpoint not in self.signaling:
            client = self.session.client("kinesis-video-signaling", endpoint_url=endpoint)
            self.signaling[endpoint] = (client, Stubber(client))
            self.signaling[endpoint][1].activate()
        return self.signaling[endpoint]

    def client(self, service: str, endpoint_url: str | None = None) -> Any:
        if service == "kinesisvideo":
            return self.control
        if service == "kinesis-video-signaling" and endpoint_url is not None:
            return self.at(endpoint_url)[0]
        return aws_client(service, endpoint_url)  # every other adapter's, over moto


@pytest.fixture
def kvs(aws: FakeAws, function_env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kvs]:
    """The HttpApi function in kvs mode over a pool of four channels, its IAM policy
    resolved for them; Kinesis Video's clients stubbed."""
    aws.settings[Setting.CALL_RELAYS] = "kvs"
    aws.settings[Setting.CALL_CHANNELS] = json.dumps(CHANNELS)
    function_env("HttpApi")
    enforce.configure(resolve(load_snapshot(), aws.settings, region=REGION))
    stubbed = Kvs()
    monkeypatch.setattr(wiring, "client", stubbed.client)
    with stubbed.stub:
        yield stubbed


def _device_key(device: Device) -> str:
    return f"{device.user_id}#{device.device_id}"


def test_kvs_relays_are_stun_and_the_turn_servers_of_the_devices_channel(
    kvs: Kvs, alice: Device
) -> None:
    relays = wiring.adapters().relays
    channel = relays.channels_for(_device_key(alice))[0]
    endpoint = "https://r-1.kinesisvideo.us-east-1.amazonaws.com"
    kvs.stub.add_response(
        "get_signaling_channel_endpoint",
        {"ResourceEndpointList": [{"Protocol": "HTTPS", "ResourceEndpoint": endpoint}]},
        {
            "ChannelARN": channel,
            "SingleMasterChannelEndpointConfiguration": {"Protocols": ["HTTPS"], "Role": "VIEWER"},
        },
    )
    turn = ["turn:1-2-3-4.t-1.kinesisvideo.us-east-1.amazonaws.com:443?transport=udp"]
    kvs.at(endpoint)[1].add_response(
        "get_ice_server_config",
        {"IceServerList": [{"Uris": turn, "Username": "u1", "Password": "p1", "Ttl": 300}]},
        {"ChannelARN": channel, "ClientId": client_id(_device_key(alice)), "Service": "TURN"},
    )

    judged_before = enforce.RECORD.calls
    answer = call("GET", ROUTE, token=alice.access_token)

    assert answer.status == 200, answer.body
    assert answer.body["transport"] == "internet"
    assert answer.body["ttl"] == 300
    assert answer.body["ice_servers"] == [
        # a STUN server has no credentials, and none are sent (not even null)
        {"urls": ["stun:stun.kinesisvideo.us-east-1.amazonaws.com:443"]},
        {"urls": turn, "username": "u1", "credential": "p1"},
    ]
    # both Kinesis Video calls were judged against HttpApi's policy (a refusal would
    # have raised: 503) and count as uses of its grant
    assert enforce.RECORD.calls >= judged_before + 2
    used = {(function_id, action) for function_id, _, action, _ in enforce.RECORD.used}
    assert ("HttpApi", "kinesisvideo:GetSignalingChannelEndpoint") in used
    assert ("HttpApi", "kinesisvideo:GetIceServerConfig") in used
    kvs.stub.assert_no_pending_responses()
    kvs.at(endpoint)[1].assert_no_pending_responses()


def test_kvs_unavailable_is_a_503_with_retry_after(kvs: Kvs, alice: Device) -> None:
    kvs.stub.add_client_error(
        "get_signaling_channel_endpoint",
        service_error_code="ClientLimitExceededException",
        http_status_code=400,
    )
    kvs.stub.add_client_error(
        "get_signaling_channel_endpoint",
        service_error_code="ClientLimitExceededException",
        http_status_code=400,
    )

    answer = call("GET", ROUTE, token=alice.access_token)

    assert answer.status == 503
    assert answer.body["error"]["code"] == "service_unavailable"
    assert answer.headers["retry-after"] == "1"
    kvs.stub.assert_no_pending_responses()


def test_the_http_api_may_ask_exactly_two_things_of_exactly_the_pools_channels(
    kvs: Kvs,
) -> None:
    policies = resolve(
        load_snapshot(), {Setting.CALL_CHANNELS: json.dumps(CHANNELS)}, region=REGION
    )
    http = policies.policy("HttpApi")
    other = f"arn:aws:kinesisvideo:{REGION}:123456789012:channel/someone-elses/1"
    for channel in CHANNELS:
        assert http.evaluate("kinesisvideo:GetSignalingChannelEndpoint", channel).allowed
        assert http.evaluate("kinesisvideo:GetIceServerConfig", channel).allowed
        for action in ("ConnectAsMaster", "ConnectAsViewer", "DescribeSignalingChannel"):
            assert not http.evaluate(f"kinesisvideo:{action}", channel).allowed
    assert not http.evaluate("kinesisvideo:GetIceServerConfig", other).allowed
    for function_id, policy in policies.policies.items():
        if function_id != "HttpApi":
            assert not policy.evaluate("kinesisvideo:GetIceServerConfig", CHANNELS[0]).allowed
    # and a call outside the pool is refused as AWS would refuse it (an unstubbed
    # client: the check comes before anything is sent)
    unstubbed = kvs.session.client("kinesisvideo")
    with (
        enforce.expect_denials() as seen,
        enforce.acting_as("HttpApi"),
        pytest.raises(ClientError) as refused,
    ):
        unstubbed.get_signaling_channel_endpoint(
            ChannelARN=other,
            SingleMasterChannelEndpointConfiguration={"Protocols": ["HTTPS"], "Role": "VIEWER"},
        )
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert [d.resource for d in seen.denials] == [other]
