"""The new device's side of linking against a fake service whose "primary" approves
(or tampers with) the link: the HMAC, the account signature and that the
details name this device are checked before anything is sent back."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from parley.crypto import IdentityKeyPair
from parley.devices.adv import (
    Details,
    LinkCode,
    account_signature,
    pairing_hmac,
    verify_device_signature,
)
from parley.devices.linking import link
from parley.devices.lists import ListedDevice, sign_list
from parley.endpoints import Endpoints
from parley.errors import LinkExpired, LinkSignatureError
from parley.profiles import profile_dir
from parley.store import Store
from tests.unit.client.fakes import serve_http

USER, PRIMARY_DEV, NEW_DEV, REF = "a" * 32, "a0" * 8, "a1" * 8, "c" * 32


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class FakeService:
    """The pairing routes, with a primary that approves the code it is shown."""

    primary: IdentityKeyPair = field(default_factory=IdentityKeyPair.generate)
    code: LinkCode | None = None
    # how the primary's approval is made: (details, account signature, hmac) -> changed
    tamper: Callable[[bytes, bytes, bytes], tuple[bytes, bytes, bytes]] | None = None
    approved: bool = False
    gone: bool = False
    completed: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/devices/pairings", self.create)
        app.router.add_post("/v1/devices/pairings/{ref}/status", self.status)
        app.router.add_post("/v1/devices/pairings/{ref}/complete", self.complete)
        app.router.add_get("/v1/devices", self.devices)
        return app

    async def create(self, request: web.Request) -> web.Response:
        self.identity = base64.b64decode((await request.json())["identity_key"])
        answer = {"ref": REF, "device_id": NEW_DEV, "claim": b64(b"k" * 32), "expires_in": 300}
        return web.json_response(answer, status=201)

    def approve(self, shown: str) -> None:
        self.code = LinkCode.parse(shown)
        self.approved = True

    async def status(self, request: web.Request) -> web.Response:
        if self.gone:
            return web.json_response({"error": {"code": "not_found", "message": "no"}}, status=404)
        if not self.approved or self.code is None:
            return web.json_response({"state": "pending"})
        details = Details(USER, self.code.device_id, 1, self.code.identity, 5).to_bytes()
        signature = account_signature(self.primary, details)
        mac = pairing_hmac(self.code.secret, details, signature)
        if self.tamper is not None:
            details, signature, mac = self.tamper(details, signature, mac)
        self.approval = (details, signature)
        return web.json_response(
            {
                "state": "approved",
                "user_id": USER,
                "details": b64(details),
                "account_signature": b64(signature),
                "hmac": b64(mac),
                "account_identity": b64(self.primary.public_key),
            }
        )

    async def complete(self, request: web.Request) -> web.Response:
        self.completed.append(await request.json())
        return web.json_response(
            {
                "access_token": "access",
                "refresh_token": "refresh",
                "expires_in": 900,
                "user_id": USER,
                "device_id": NEW_DEV,
            }
        )

    async def devices(self, request: web.Request) -> web.Response:
        assert self.code is not None
        listed = sign_list(
            self.primary,
            USER,
            2,
            [
                ListedDevice(PRIMARY_DEV, 0, self.primary.public_key),
                ListedDevice(NEW_DEV, 1, self.code.identity),
            ],
            7,
        )
        return web.json_response({"devices": [], "device_list": dict(listed.wire())})


async def run_link(service: FakeService, home: Path, **kwargs: Any) -> Any:
    async with serve_http(service.app()) as url:
        endpoints = Endpoints(http_url=url, ws_url=url.replace("http", "ws") + "/ws")
        return await link(
            "laptop",
            endpoints=endpoints,
            home=home,
            allow_plaintext=True,
            on_code=service.approve,
            poll_interval=0.01,
            **kwargs,
        )


async def test_a_verified_approval_links_this_device_as_a_companion(tmp_path: Path) -> None:
    service = FakeService()
    account = await run_link(service, tmp_path)
    assert (account.user_id, account.device_id, account.role, account.key_index) == (
        USER,
        NEW_DEV,
        "companion",
        1,
    )
    (done,) = service.completed
    details, signature = service.approval
    verify_device_signature(
        service.identity,
        details,
        signature,
        service.primary.public_key,
        base64.b64decode(done["device_signature"]),
    )
    assert done["keys"]["identity_key"] == b64(service.identity)
    assert len(done["keys"]["one_time_prekeys"]) == 100
    store = Store.open(profile_dir("laptop", tmp_path), keyring=None, allow_plaintext=True)
    try:
        assert store.accounts.account_identity() == service.primary.public_key
        assert store.accounts.identity().public_key == service.identity
        kept = store.device_lists.get(USER)
        assert kept is not None
        assert kept.version == 2
        assert store.accounts.tokens() is not None
    finally:
        store.close()


def other_secret(service: FakeService) -> Callable[[bytes, bytes, bytes], Any]:
    def tamper(details: bytes, signature: bytes, mac: bytes) -> tuple[bytes, bytes, bytes]:
        return details, signature, pairing_hmac(b"x" * 16, details, signature)

    return tamper


def bad_signature(service: FakeService) -> Callable[[bytes, bytes, bytes], Any]:
    """Signed by another key than the account identity (HMAC made right for it)."""

    def tamper(details: bytes, signature: bytes, mac: bytes) -> tuple[bytes, bytes, bytes]:
        assert service.code is not None
        forged = account_signature(IdentityKeyPair.generate(), details)
        return details, forged, pairing_hmac(service.code.secret, details, forged)

    return tamper


@pytest.mark.parametrize(
    ("tamper", "match"),
    [(other_secret, "HMAC"), (bad_signature, "account signature")],
)
async def test_an_approval_that_does_not_verify_links_nothing(
    tmp_path: Path, tamper: Any, match: str
) -> None:
    service = FakeService()
    service.tamper = tamper(service)
    with pytest.raises(LinkSignatureError, match=match):
        await run_link(service, tmp_path)
    assert service.completed == []
    assert not profile_dir("laptop", tmp_path).exists()


async def test_details_naming_another_identity_are_refused(tmp_path: Path) -> None:
    service = FakeService()

    def resign(details: bytes, signature: bytes, mac: bytes) -> tuple[bytes, bytes, bytes]:
        assert service.code is not None
        other = Details(USER, NEW_DEV, 1, IdentityKeyPair.generate().public_key, 5).to_bytes()
        signed = account_signature(service.primary, other)
        return other, signed, pairing_hmac(service.code.secret, other, signed)

    service.tamper = resign
    with pytest.raises(LinkSignatureError, match="another identity"):
        await run_link(service, tmp_path)
    assert service.completed == []


async def test_a_pairing_gone_before_approval_is_expired(tmp_path: Path) -> None:
    service = FakeService(gone=True)
    with pytest.raises(LinkExpired):
        await run_link(service, tmp_path)
    assert not profile_dir("laptop", tmp_path).exists()
