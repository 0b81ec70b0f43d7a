"""The relays answer, checked before WebRTC is given it."""

from __future__ import annotations

from typing import Any

import pytest

from parley.calling.relays import IceConfig, IceServer, parse_relays
from parley.errors import ParleyClientError

NOW = 1_000_000.0


def answer(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ice_servers": [
            {"urls": ["stun:stun.kinesisvideo.eu-west-1.amazonaws.com:443"]},
            {
                "urls": ["turn:1-2-3-4.t-1.kinesisvideo.eu-west-1.amazonaws.com:443?transport=udp"],
                "username": "1700000300:channel",
                "credential": "secret",
            },
        ],
        "ttl": 300,
        "expires_at": NOW + 300,
        "transport": "internet",
    }
    body.update(over)
    return body


def test_servers_and_their_credentials_are_kept_with_their_lifetime() -> None:
    config = parse_relays(answer(), NOW)
    assert config.servers[1] == IceServer(
        ("turn:1-2-3-4.t-1.kinesisvideo.eu-west-1.amazonaws.com:443?transport=udp",),
        "1700000300:channel",
        "secret",
    )
    assert not config.loopback
    assert config.fresh(NOW + 200)
    assert not config.fresh(NOW + 250)  # less than a minute left: fetch again


def test_the_local_stack_answers_loopback_with_no_servers() -> None:
    config = parse_relays(answer(ice_servers=[], transport="loopback"), NOW)
    assert config == IceConfig((), True, NOW + 300)


@pytest.mark.parametrize(
    "bad",
    [
        answer(transport="carrier pigeon"),
        answer(ice_servers="stun:x"),
        answer(ice_servers=[{"urls": []}]),
        answer(ice_servers=[{"urls": ["http://evil.example"]}]),
        answer(ice_servers=[{"urls": ["turn:x"], "username": 5}]),
        answer(ice_servers=[["turn:x"]]),
        answer(ttl=0),
        answer(ttl=True),
        [],
    ],
)
def test_a_malformed_answer_is_refused(bad: Any) -> None:
    with pytest.raises(ParleyClientError):
        parse_relays(bad, NOW)
