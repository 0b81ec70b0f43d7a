"""The HTTP client against a small aiohttp server that plays the service."""

from __future__ import annotations

import asyncio
import base64
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from parley.api import ApiClient
from parley.crypto import IdentityKeyPair, OneTimePreKey, SignedPreKey
from parley.errors import ApiError, AuthenticationError, NotFound, RateLimited, ServiceUnavailable
from parley.models import LinkedDevice
from parley.store import Tokens
from tests.unit.client.fakes import serve_http

# the fixtures' server and session live on the session loop: so do the tests
pytestmark = pytest.mark.asyncio(loop_scope="session")

USER = "b" * 32
DEVICE = "1" * 16


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Keeper:
    current: Tokens | None
    saved: list[Tokens] = field(default_factory=list)

    def tokens(self) -> Tokens | None:
        return self.current

    def save_tokens(self, tokens: Tokens) -> None:
        self.current = tokens
        self.saved.append(tokens)


@dataclass
class Service:
    """Remembers what it saw; answers as told."""

    valid_access: set[str] = field(default_factory=lambda: {"good"})
    refreshes: int = 0
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    behaviour: dict[str, Callable[[web.Request], Any]] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        self.calls.append((request.method, request.path, auth))
        custom = self.behaviour.get(f"{request.method} {request.path}")
        if custom is not None:
            answer = custom(request)
            return await answer if inspect.isawaitable(answer) else answer
        if request.path == "/v1/auth/refresh":
            body = await request.json()
            if body["refresh_token"] != "refresh-1":
                return _error(401, "invalid_token", "spent")
            self.refreshes += 1
            await asyncio.sleep(0.05)  # slow enough for concurrent callers to pile up
            self.valid_access = {"fresh"}
            return web.json_response(
                {"access_token": "fresh", "refresh_token": "refresh-2", "expires_in": 900}
            )
        if auth is None or auth.removeprefix("Bearer ") not in self.valid_access:
            return _error(401, "invalid_token", "expired")
        if request.path == "/v1/keys/count":
            return web.json_response({"one_time_prekeys": 42})
        return web.json_response({"error": {"code": "not_found", "message": "nope"}}, status=404)


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


@pytest.fixture
def service() -> Service:
    return Service()


@pytest.fixture
async def base_url(service: Service) -> AsyncIterator[str]:
    async with serve_http(service.app()) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


NOW = 1_000_000.0


def api_with(
    base_url: str, http: aiohttp.ClientSession, access: str, expires_at: float
) -> tuple[ApiClient, Keeper]:
    keeper = Keeper(Tokens(access, "refresh-1", expires_at))
    return ApiClient(base_url, http, keeper, clock=lambda: NOW), keeper


async def test_a_401_refreshes_the_token_once_and_retries(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    api, keeper = api_with(base_url, http, "revoked-by-server", NOW + 600)
    assert await api.key_count() == 42
    assert service.refreshes == 1
    assert keeper.current == Tokens("fresh", "refresh-2", NOW + 900)
    assert [c[2] for c in service.calls] == [
        "Bearer revoked-by-server",
        None,  # the refresh call carries no access token
        "Bearer fresh",
    ]


async def test_a_token_about_to_expire_is_refreshed_before_the_request(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    api, _ = api_with(base_url, http, "good", NOW + 10)
    assert await api.key_count() == 42
    assert [c[1] for c in service.calls] == ["/v1/auth/refresh", "/v1/keys/count"]


async def test_concurrent_requests_share_one_refresh(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    api, _ = api_with(base_url, http, "good", NOW - 1)
    counts = await asyncio.gather(*(api.key_count() for _ in range(5)))
    assert counts == [42] * 5
    assert service.refreshes == 1  # a second refresh would spend refresh-2's family


async def test_a_spent_refresh_token_is_an_authentication_error(
    base_url: str, http: aiohttp.ClientSession
) -> None:
    keeper = Keeper(Tokens("bad", "stolen-and-spent", NOW - 1))
    api = ApiClient(base_url, http, keeper, clock=lambda: NOW)
    with pytest.raises(AuthenticationError) as caught:
        await api.key_count()
    assert caught.value.code == "invalid_token"
    assert keeper.saved == []


async def test_errors_keep_the_service_code_and_retry_after(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    service.behaviour["POST /v1/auth/otp"] = lambda _r: _error(
        429, "rate_limited", "slow down", retry_after=17
    )
    service.behaviour["POST /v1/auth/verify"] = lambda _r: web.Response(
        status=429, headers={"Retry-After": "9"}, text="busy"
    )
    service.behaviour["GET /v1/users"] = lambda _r: web.json_response(
        {"message": "Not Found"}, status=404
    )
    service.behaviour["PUT /v1/settings/presence"] = lambda _r: _error(
        400, "invalid_request", "bad"
    )
    api, _ = api_with(base_url, http, "good", NOW + 600)
    with pytest.raises(RateLimited) as limited:
        await api.request_code("+15550001")
    assert (limited.value.code, limited.value.retry_after) == ("rate_limited", 17)
    with pytest.raises(RateLimited) as header:
        await api.verify("+15550001", "123456")
    assert header.value.retry_after == 9
    with pytest.raises(NotFound) as missing:
        await api.lookup("+15550002")
    assert missing.value.message == "Not Found"
    with pytest.raises(ApiError) as bad:
        await api.set_presence("sometimes")
    assert (bad.value.status, bad.value.code) == (400, "invalid_request")


async def test_a_5xx_is_retried_for_get_but_never_for_post(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    failures = {"n": 0}

    def flaky(_request: web.Request) -> web.Response:
        failures["n"] += 1
        if failures["n"] < 3:
            return _error(503, "service_unavailable", "try again")
        return web.json_response({"one_time_prekeys": 7})

    service.behaviour["GET /v1/keys/count"] = flaky
    service.behaviour["POST /v1/auth/verify"] = lambda _r: _error(500, "internal_error", "x")
    api, _ = api_with(base_url, http, "good", NOW + 600)
    assert await api.key_count() == 7
    assert failures["n"] == 3
    with pytest.raises(ServiceUnavailable):
        await api.verify("+15550001", "123456")
    assert [c[1] for c in service.calls].count("/v1/auth/verify") == 1


async def test_an_unreachable_service_is_service_unavailable(http: aiohttp.ClientSession) -> None:
    api = ApiClient("http://127.0.0.1:9", http, Keeper(None))
    with pytest.raises(ServiceUnavailable):
        await api.request_code("+15550001")


async def test_key_bundles_are_parsed_and_malformed_devices_skipped(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    identity = IdentityKeyPair.generate()
    signed = SignedPreKey.generate(identity, 3, 0.0)
    good = {
        "device_id": DEVICE,
        "identity_key": b64(identity.public_key),
        "signed_prekey": {
            "key_id": 3,
            "public_key": b64(signed.public_key),
            "signature": b64(signed.signature),
        },
        "one_time_prekey": {"key_id": 9, "public_key": b64(b"\x05" * 32)},
    }
    bad_b64 = {**good, "device_id": "2" * 16, "identity_key": "***"}
    short_key = {**good, "device_id": "3" * 16, "identity_key": b64(b"\x01" * 31)}
    bad_id = {**good, "device_id": "not-a-device"}
    no_otk = {**good, "device_id": "4" * 16, "one_time_prekey": None}
    service.behaviour[f"GET /v1/keys/{USER}"] = lambda _r: web.json_response(
        {"user_id": USER, "devices": [good, bad_b64, short_key, bad_id, no_otk, "junk"]}
    )
    api, _ = api_with(base_url, http, "good", NOW + 600)
    bundles = await api.bundles(USER)
    assert [b.device_id for b in bundles] == [DEVICE, "4" * 16]
    first = bundles[0].bundle
    first.verify()
    assert (first.signed_prekey_id, first.one_time_prekey_id) == (3, 9)
    assert bundles[1].bundle.one_time_prekey is None


async def test_upload_sends_the_wire_format(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    seen: dict[str, Any] = {}

    async def capture(request: web.Request) -> web.Response:
        seen.update(await request.json())
        return web.Response(status=204)

    service.behaviour["PUT /v1/keys"] = capture
    api, _ = api_with(base_url, http, "good", NOW + 600)
    identity = IdentityKeyPair.generate()
    signed = SignedPreKey.generate(identity, 1, 0.0)
    otks = OneTimePreKey.generate_batch(5, 2)
    await api.upload_keys(identity.public_key, signed, otks)
    assert seen == {
        "identity_key": b64(identity.public_key),
        "signed_prekey": {
            "key_id": 1,
            "public_key": b64(signed.public_key),
            "signature": b64(signed.signature),
        },
        "one_time_prekeys": [{"key_id": k.key_id, "public_key": b64(k.public_key)} for k in otks],
    }


async def test_the_device_list_is_parsed_and_malformed_lines_skipped(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    good = {"device_id": DEVICE, "created_at": 5, "current": True, "ready": True, "push": None}
    other = {**good, "device_id": "2" * 16, "current": False, "ready": False, "push": "fcm"}
    bad = [
        {**good, "device_id": "X" * 16},
        {**good, "created_at": -1},
        {**good, "current": "yes"},
        {**good, "push": 7},
        "not a device",
    ]
    service.behaviour["GET /v1/devices"] = lambda _r: web.json_response(
        {"devices": [good, *bad, other]}
    )
    api, _ = api_with(base_url, http, "good", NOW + 600)

    assert await api.devices() == [
        LinkedDevice(DEVICE, 5, True, True, None),
        LinkedDevice("2" * 16, 5, False, False, "fcm"),
    ]
    service.behaviour["GET /v1/devices"] = lambda _r: web.json_response({"devices": "all"})
    with pytest.raises(ApiError):
        await api.devices()


async def test_removing_a_device_deletes_it_by_id_and_a_bad_id_never_leaves(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    service.behaviour[f"DELETE /v1/devices/{DEVICE}"] = lambda _r: web.Response(status=204)
    api, _ = api_with(base_url, http, "good", NOW + 600)

    await api.remove_device(DEVICE)
    assert ("DELETE", f"/v1/devices/{DEVICE}", "Bearer good") in service.calls
    calls = len(service.calls)
    for bad in ("../keys", "ABCDEF0123456789", DEVICE + "0", ""):
        with pytest.raises(ValueError, match="device id"):
            await api.remove_device(bad)
    assert len(service.calls) == calls
    with pytest.raises(NotFound):
        await api.remove_device("3" * 16)  # the service: no such device


async def test_deleting_the_account_sends_the_code_and_asks_again_after_a_5xx(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    bodies: list[Any] = []

    async def cut_short_once(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        if len(bodies) == 1:
            return _error(503, "service_unavailable", "try again")
        return web.Response(status=204)

    service.behaviour["DELETE /v1/account"] = cut_short_once
    api, _ = api_with(base_url, http, "good", NOW + 600)

    await api.delete_account("123456")

    # the same request again: the service finishes a deletion without a new code
    assert bodies == [{"code": "123456"}, {"code": "123456"}]


async def test_a_wrong_deletion_code_is_not_mistaken_for_a_stale_token(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    service.behaviour["DELETE /v1/account"] = lambda _r: _error(
        401, "invalid_code", "wrong", attempts_left=4
    )
    api, keeper = api_with(base_url, http, "good", NOW + 600)

    with pytest.raises(AuthenticationError) as refused:
        await api.delete_account("654321")

    assert (refused.value.code, refused.value.details["attempts_left"]) == ("invalid_code", 4)
    # one attempt spent, not two: no refresh and no second try
    assert [c[1] for c in service.calls] == ["/v1/account"]
    assert service.refreshes == 0
    assert keeper.saved == []


async def test_a_deletion_code_is_asked_for_with_its_purpose(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    bodies: list[Any] = []

    async def record(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response({"expires_in": 300, "retry_after": 30}, status=202)

    service.behaviour["POST /v1/auth/otp"] = record
    api, _ = api_with(base_url, http, "good", NOW + 600)

    await api.request_code("+15550001")
    await api.request_code("+15550001", "delete_account")

    assert bodies == [
        {"phone": "+15550001"},
        {"phone": "+15550001", "purpose": "delete_account"},
    ]
