"""Push tokens in the SDK: registering answers a pending registration, the challenge
is read from a push's data (or, locally, from the push sink) and sent back."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from parley.api import PushRegistration
from parley.errors import ApiError, ParleyClientError
from parley.push import challenge_from_local_push, challenge_of, push_count
from tests.unit.client import test_api as api_tests
from tests.unit.client.fakes import serve_http
from tests.unit.client.test_api import NOW, Service, _error, api_with

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "fcm-token-1"


# the fake service and its fixtures are the API tests' own
service, base_url, http = api_tests.service, api_tests.base_url, api_tests.http


async def test_registering_answers_pending_and_verifying_sends_the_challenge_back(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    bodies: dict[str, Any] = {}

    async def pending(request: web.Request) -> web.Response:
        bodies["put"] = await request.json()
        return web.json_response(
            {"state": "pending", "challenge_sent": True, "expires_at": 1_700_000_600}, status=202
        )

    async def verified(request: web.Request) -> web.Response:
        bodies["verify"] = await request.json()
        return web.Response(status=204)

    service.behaviour["PUT /v1/push"] = pending
    service.behaviour["POST /v1/push/verify"] = verified
    api, _ = api_with(base_url, http, "good", NOW + 600)

    assert await api.register_push("fcm", TOKEN) == PushRegistration(True, 1_700_000_600)
    await api.verify_push("the-challenge")
    assert bodies == {
        "put": {"platform": "fcm", "token": TOKEN},
        "verify": {"challenge": "the-challenge"},
    }


async def test_a_refused_challenge_keeps_its_code_and_attempts_left(
    base_url: str, http: aiohttp.ClientSession, service: Service
) -> None:
    service.behaviour["POST /v1/push/verify"] = lambda _r: _error(
        400, "invalid_push_challenge", "no", attempts_left=3
    )
    service.behaviour["PUT /v1/push"] = lambda _r: web.json_response({"state": "pending"})
    api, _ = api_with(base_url, http, "good", NOW + 600)
    with pytest.raises(ApiError) as refused:
        await api.verify_push("wrong")
    assert refused.value.code == "invalid_push_challenge"
    with pytest.raises(ParleyClientError):
        await api.register_push("fcm", TOKEN)  # an answer without its fields


@pytest.mark.asyncio(loop_scope="session")
async def test_a_challenge_is_told_from_a_wake_up() -> None:
    assert challenge_of({"type": "push_challenge", "challenge": "abc"}) == "abc"
    assert challenge_of({"type": "wake"}) is None
    assert challenge_of({"type": "push_challenge", "challenge": 7}) is None
    assert challenge_of({"type": "push_challenge", "challenge": "x" * 129}) is None
    assert challenge_of({"challenge": "abc"}) is None


def _sink_record(token: str, data: dict[str, str], n: int) -> dict[str, Any]:
    message = json.dumps({"default": json.dumps(data), "GCM": json.dumps({"data": data})})
    return {"id": str(n), "platform": "fcm", "token": token, "message": message, "at": "t"}


async def test_the_local_push_sink_gives_the_newest_challenge_to_a_token() -> None:
    records = [
        _sink_record(TOKEN, {"type": "push_challenge", "challenge": "old"}, 1),
        _sink_record("someone-else", {"type": "push_challenge", "challenge": "theirs"}, 2),
        _sink_record(TOKEN, {"type": "wake"}, 3),
    ]

    async def sink_records(_request: web.Request) -> web.Response:
        return web.json_response(records)

    app = web.Application()
    app.router.add_get("/_local/push", sink_records)
    async with serve_http(app) as url:
        sink = f"{url}/_local/push"
        before = await push_count(sink, TOKEN)
        assert before == 2
        records.append(_sink_record(TOKEN, {"type": "push_challenge", "challenge": "new"}, 4))
        assert await challenge_from_local_push(sink, TOKEN, after=before) == "new"
        assert await challenge_from_local_push(sink, TOKEN) == "new"
