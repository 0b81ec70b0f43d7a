"""Route selection as API Gateway does it: HTTP API paths, WebSocket actions."""

from __future__ import annotations

import pytest

from local.http_api import HttpRouter
from local.websocket import select_route
from parley_server.catalogue import HTTP_ROUTES, WS_ROUTES, RouteSpec

WS = {route.route_key: route for route in WS_ROUTES}


def test_every_catalogue_route_matches_itself() -> None:
    router = HttpRouter(HTTP_ROUTES)
    for key in HTTP_ROUTES:
        method, path = key.split(" ", 1)
        concrete = path.replace("{user_id}", "0" * 32).replace("{media_id}", "m1")
        match = router.match(method, concrete)
        assert match is not None, key
        assert match.route_key == key


def test_literal_segment_beats_a_variable() -> None:
    router = HttpRouter(["GET /v1/keys/{user_id}", "GET /v1/keys/count"])
    assert router.match("GET", "/v1/keys/count").route_key == "GET /v1/keys/count"  # type: ignore[union-attr]
    other = router.match("GET", "/v1/keys/abc")
    assert other is not None
    assert other.route_key == "GET /v1/keys/{user_id}"
    assert other.path_parameters == {"user_id": "abc"}


def test_path_parameters_are_percent_decoded() -> None:
    match = HttpRouter(["GET /v1/keys/{user_id}"]).match("GET", "/v1/keys/a%2Fb%20c")
    assert match is not None
    assert match.path_parameters == {"user_id": "a/b c"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/keys/count"),  # method not routed
        ("GET", "/v1/keys"),
        ("GET", "/v1/keys/"),  # empty variable
        ("GET", "/v1/keys/a/b"),
        ("GET", "/nope"),
    ],
)
def test_unrouted_requests_do_not_match(method: str, path: str) -> None:
    assert HttpRouter(["GET /v1/keys/{user_id}", "GET /v1/keys/count"]).match(method, path) is None


def test_greedy_any_and_default_are_the_fallbacks_in_that_order() -> None:
    router = HttpRouter(["GET /v1/{proxy+}", "ANY /v1/users", "GET /v1/users", "$default"])
    assert router.match("GET", "/v1/users").route_key == "GET /v1/users"  # type: ignore[union-attr]
    assert router.match("PUT", "/v1/users").route_key == "ANY /v1/users"  # type: ignore[union-attr]
    greedy = router.match("GET", "/v1/a/b/c")
    assert greedy is not None
    assert greedy.route_key == "GET /v1/{proxy+}"
    assert greedy.path_parameters == {"proxy": "a/b/c"}
    assert router.match("DELETE", "/x").route_key == "$default"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "route_key"),
    [
        ('{"action":"send","id":"1"}', "send"),
        ('{"action":"ack"}', "ack"),
        ('{"action":"nope"}', "$default"),
        ('{"action":"$connect"}', "$default"),
        ('{"action":"$disconnect"}', "$default"),
        ('{"action":7}', "$default"),
        ('{"no":"action"}', "$default"),
        ('["send"]', "$default"),
        ("not json at all", "$default"),
        ("", "$default"),
    ],
)
def test_action_selects_the_websocket_route_else_default(body: str, route_key: str) -> None:
    route = select_route(body, WS)
    assert route is not None
    assert route.route_key == route_key


def test_without_default_an_unknown_action_has_no_route() -> None:
    routes = {"send": RouteSpec("send", "WsSend", two_way=True)}
    assert select_route('{"action":"other"}', routes) is None
    assert select_route('{"action":"send"}', routes) == routes["send"]
