"""The running local stack: its endpoints, API Gateway's answers at the edges,
the SNS sinks, and one real sign-up-and-connect through every layer."""

from __future__ import annotations

import json
import secrets

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import LocalStack
from tests.e2e.support import sign_in


def test_endpoints_file_names_every_url(local_stack: LocalStack) -> None:
    written = json.loads(local_stack.local_file.read_text())
    assert {"http_url", "ws_url", "sms_url", "push_url", "region"} <= set(written)
    assert written["ws_url"] == written["http_url"].replace("http://", "ws://") + "/local"
    assert written["sms_url"] == written["http_url"] + "/_local/sms"
    assert written["push_url"] == written["http_url"] + "/_local/push"
    assert "ready in" in local_stack.output()


async def test_unknown_http_route_is_api_gateways_404(local_stack: LocalStack) -> None:
    async with aiohttp.ClientSession() as http, http.get(local_stack.http_url + "/v2/nope") as r:
        assert r.status == 404
        assert await r.json() == {"message": "Not Found"}


@pytest.mark.parametrize(("query", "status"), [("", 401), ("?token=not-a-token", 401)])
async def test_websocket_without_a_valid_token_is_refused_at_the_handshake(
    local_stack: LocalStack, query: str, status: int
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(local_stack.ws_url + query, proxy=None):
            pass
    assert refused.value.response.status_code == status


async def test_sms_published_through_sns_shows_in_the_sms_sink(local_stack: LocalStack) -> None:
    text = f"sink check {secrets.token_hex(4)}"
    local_stack.moto("sns").publish(PhoneNumber="+447700900123", Message=text)
    async with aiohttp.ClientSession() as http, http.get(local_stack.sms_url) as r:
        sent = await r.json()
    assert {"phone": "+447700900123", "message": text} in [
        {"phone": m["phone"], "message": m["message"]} for m in sent
    ]
    assert f"[sms] to +447700900123: {text}" in local_stack.output()


async def test_push_published_to_a_platform_endpoint_shows_in_the_push_sink(
    local_stack: LocalStack,
) -> None:
    sns = local_stack.moto("sns")
    apps = {
        a["PlatformApplicationArn"]
        for a in sns.list_platform_applications()["PlatformApplications"]
    }
    fcm = next(arn for arn in apps if "/GCM/" in arn)
    token = f"device-token-{secrets.token_hex(4)}"
    endpoint = sns.create_platform_endpoint(PlatformApplicationArn=fcm, Token=token)
    sns.publish(TargetArn=endpoint["EndpointArn"], Message='{"wake":true}')
    async with aiohttp.ClientSession() as http, http.get(local_stack.push_url) as r:
        pushed = await r.json()
    mine = [p for p in pushed if p["token"] == token]
    assert len(mine) == 1
    assert mine[0]["platform"] == "fcm"
    assert mine[0]["message"] == '{"wake":true}'


async def test_sign_up_then_connect_and_sync_through_the_real_handlers(
    local_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        device = await sign_in(local_stack, http, keys=False)
    async with connect(f"{local_stack.ws_url}?token={device.token}", proxy=None) as ws:
        await ws.send(json.dumps({"action": "sync"}))
        # nothing is pending for a new device: the only event is "synced"
        assert json.loads(await ws.recv())["event"] == "synced"
