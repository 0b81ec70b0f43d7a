"""What the HTTP integration tests share: the handler's clock, moved on by hand
past the code's resend cool-down, and the harness acting as the HttpApi function."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from parley_server.handlers import http_api
from tests.conftest import FakeAws
from tests.integration.test_http_harness import Answer, call, link, sign_up, with_keys
from tests.integration.test_http_harness import Device as Signed
from tests.integration.ws_harness import Harness, harness


class Clock:
    """The HTTP API's clock, moved on a minute per sign-in or code request, so one
    person can ask for several codes in a row, past the resend cool-down each time."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._real = http_api._now

    def now(self) -> float:
        return self._real() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    found = Clock()
    monkeypatch.setattr(http_api, "_now", found.now)
    return found


@pytest.fixture
def http_ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    """The WebSocket harness, with the process set up as the HttpApi function."""
    with harness(aws, function_env) as h:
        h.function_env("HttpApi")
        yield h


def http(ws: Harness, method: str, path: str, **kwargs: Any) -> Answer:
    """An HTTP API call, as the HttpApi function."""
    ws.function_env("HttpApi")
    return call(method, path, **kwargs)


# The phone number the HTTP tests sign in with unless they name another.
PHONE = "+14155552671"
SignIn = Callable[..., Signed]


@pytest.fixture
def sign_in(http_ws: Harness, clock: Clock) -> SignIn:
    """Call to sign `phone` in on one more device, with its keys uploaded (each a
    minute later, past the code's resend cool-down)."""

    primaries: dict[str, Signed] = {}

    def one_more(phone: str = PHONE) -> Signed:
        clock.offset += 60
        http_ws.function_env("HttpApi")
        primary = primaries.get(phone)
        if (
            primary is not None
            and call("GET", "/v1/devices", token=primary.access_token).status == 200
        ):
            # a number signs in once (its primary); further devices are linked to it
            return link(primary)
        primaries[phone] = with_keys(sign_up(phone))
        return primaries[phone]

    return one_more


@pytest.fixture
def http_env(function_env: Any) -> None:
    """The HttpApi function's environment: the test_http_* files use it for every test."""
    function_env("HttpApi")
