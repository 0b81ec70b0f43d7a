"""Call relays in the synthesized template: a pool of SINGLE_MASTER signalling
channels (callRelayChannels, 4 by default), their ARNs in the HttpApi function's
environment, and one grant: their HTTPS endpoint and TURN credentials, to that
function only, on those channels only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parley_server.catalogue import FUNCTIONS, Setting, function
from stacks.calls import RELAY_ACTIONS
from stacks.settings import (
    CALL_CHANNELS_BUDGET,
    MAX_CALL_RELAY_CHANNELS,
    ContextError,
    ParleySettings,
    call_channels_chars,
)
from tests.infra.synthesis import TemplateView, synthesize

pytestmark = pytest.mark.infra

CHANNEL = "AWS::KinesisVideo::SignalingChannel"


@pytest.fixture(scope="module")
def view(synth_template: dict[str, Any]) -> TemplateView:
    return TemplateView(synth_template)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _env(view: TemplateView, function_id: str) -> dict[str, Any]:
    props = view.function_by_handler(function(function_id).handler)[1]["Properties"]
    variables: dict[str, Any] = props["Environment"]["Variables"]
    return variables


def _channel_ids(view: TemplateView) -> list[str]:
    """The channels' logical ids, in the order of their names (…-call-0, -1, …)."""
    channels = view.of_type(CHANNEL)
    return sorted(channels, key=lambda k: int(channels[k]["Properties"]["Name"].rsplit("-", 1)[1]))


def test_the_default_pool_is_four_single_master_channels_named_by_the_stack(
    view: TemplateView,
) -> None:
    channels = view.of_type(CHANNEL)
    assert len(channels) == ParleySettings().call_relay_channels == 4
    assert sorted(c["Properties"]["Name"] for c in channels.values()) == [
        f"Parley-dev-call-{n}" for n in range(4)
    ]
    assert {c["Properties"]["Type"] for c in channels.values()} == {"SINGLE_MASTER"}


def test_the_http_api_relays_calls_through_kvs_over_exactly_the_pools_channels(
    view: TemplateView,
) -> None:
    env = _env(view, "HttpApi")
    assert env[Setting.CALL_RELAYS.value] == "kvs"
    joined = env[Setting.CALL_CHANNELS.value]["Fn::Join"]
    assert joined[0] == ""
    parts = joined[1]
    # a JSON list: ["<arn>","<arn>",...]
    assert parts[0] == '["'
    assert parts[-1] == '"]'
    assert all(p == '","' for p in parts[2:-1:2])
    assert [p["Fn::GetAtt"] for p in parts[1::2]] == [[c, "Arn"] for c in _channel_ids(view)]
    for spec in FUNCTIONS:
        if spec.id != "HttpApi":
            assert Setting.CALL_CHANNELS.value not in _env(view, spec.id), spec.id
            assert Setting.CALL_RELAYS.value not in _env(view, spec.id), spec.id


def _role_of(view: TemplateView, function_id: str) -> str:
    props = view.function_by_handler(function(function_id).handler)[1]["Properties"]
    role: str = props["Role"]["Fn::GetAtt"][0]
    return role


def test_only_the_http_api_may_ask_the_channels_and_only_for_endpoint_and_turn(
    view: TemplateView,
) -> None:
    channel_arns = [{"Fn::GetAtt": [c, "Arn"]} for c in _channel_ids(view)]
    granted = []
    for owner, statement in view.all_statements():
        actions = _as_list(statement["Action"])
        if any(a.startswith("kinesisvideo:") for a in actions):
            granted.append((owner, statement))
    (statement,) = [s for _, s in granted]
    assert statement["Effect"] == "Allow"
    assert sorted(_as_list(statement["Action"])) == sorted(RELAY_ACTIONS)
    assert statement["Resource"] == channel_arns
    owner = granted[0][0]
    policy = view.resources[owner]
    assert policy["Type"] == "AWS::IAM::Policy"
    assert policy["Properties"]["Roles"] == [{"Ref": _role_of(view, "HttpApi")}]


def test_the_pool_grows_with_its_context_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    synthesis = synthesize(Path(tmp_path_factory.mktemp("cdk.out.calls")), {"callRelayChannels": 7})
    view = TemplateView(synthesis.template)
    assert len(view.of_type(CHANNEL)) == 7
    env = _env(view, "HttpApi")
    assert len(env[Setting.CALL_CHANNELS.value]["Fn::Join"][1][1::2]) == 7
    assert synthesis.violations == []


@pytest.mark.parametrize(("raw", "expected"), [(1, 1), ("12", 12), (20, 20)])
def test_call_relay_channels_are_accepted_from_cdk_json_and_command_line(
    raw: Any, expected: int
) -> None:
    assert ParleySettings.from_context({"callRelayChannels": raw}).call_relay_channels == expected


@pytest.mark.parametrize("raw", [0, -1, MAX_CALL_RELAY_CHANNELS + 1, "four", True, 2.5, None])
def test_a_bad_pool_size_is_refused_naming_the_key(raw: Any) -> None:
    with pytest.raises(ContextError, match=r"callRelayChannels: .* from 1 to 20"):
        ParleySettings.from_context({"callRelayChannels": raw})


def test_the_channel_arns_always_fit_the_functions_environment() -> None:
    # the largest pool of the default stack names fits
    for name in ("Parley-dev", "Parley-prod"):
        assert call_channels_chars(name, MAX_CALL_RELAY_CHANNELS) <= CALL_CHANNELS_BUDGET
    # a longer stack name with the largest pool does not, and is refused before synthesis
    with pytest.raises(ContextError, match="shorter stackName"):
        ParleySettings.from_context(
            {"stackName": "Parley-a-rather-long-stack-name", "callRelayChannels": 20}
        )
    # the estimate is an upper bound of the real list
    arns = [
        f"arn:aws:kinesisvideo:us-east-1:123456789012:channel/Parley-prod-call-{n}/1700000000000"
        for n in range(MAX_CALL_RELAY_CHANNELS)
    ]
    assert len(json.dumps(arns, separators=(",", ":"))) <= call_channels_chars(
        "Parley-prod", MAX_CALL_RELAY_CHANNELS
    )
