"""The fake service shared by the client's unit tests: key bundles as the server
hands them out, a device's prekeys in memory, and a local HTTP server for an
aiohttp application."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from parley.answers import DeviceBundle
from parley.crypto import IdentityKeyPair, OneTimePreKey, PreKeyBundle, SignedPreKey

__all__ = ["KeyServer", "KeyUploader", "PreKeyStore", "Published", "serve_http"]


@dataclass
class Published:
    """One device's public keys as the server holds them."""

    identity_key: bytes
    signed: SignedPreKey
    one_time: list[OneTimePreKey]

    def claim(self) -> PreKeyBundle:
        """The device's bundle, with one one-time prekey taken (none if none is left)."""
        otk = self.one_time.pop(0) if self.one_time else None
        return PreKeyBundle(
            identity_key=self.identity_key,
            signed_prekey_id=self.signed.key_id,
            signed_prekey=self.signed.public_key,
            signed_prekey_signature=self.signed.signature,
            one_time_prekey_id=otk.key_id if otk else None,
            one_time_prekey=otk.public_key if otk else None,
        )


@dataclass
class KeyServer:
    """What PUT and GET /v1/keys do, in memory: each fetch of a user's bundles
    claims one one-time prekey per device."""

    devices: dict[str, dict[str, Published]] = field(default_factory=dict)

    def uploader(self, uid: str, did: str) -> KeyUploader:
        """The key calls of one device's API client."""
        return KeyUploader(self, uid, did)

    def bundle(self, uid: str, did: str) -> PreKeyBundle:
        return self.devices[uid][did].claim()

    def claim_all(self, uid: str) -> list[DeviceBundle]:
        """One bundle per device of `uid`, each with a one-time prekey taken."""
        return [
            DeviceBundle(did, keys.claim())
            for did, keys in sorted(self.devices.get(uid, {}).items())
        ]

    async def fetch(self, uid: str) -> list[DeviceBundle]:
        """GET /v1/keys/{uid} as `ApiClient.bundles` returns it."""
        return self.claim_all(uid)

    def answer(self, uid: str) -> dict[str, Any]:
        """GET /v1/keys/{uid} as the service answers it."""
        devices = [_bundle_json(d.device_id, d.bundle) for d in self.claim_all(uid)]
        return {"user_id": uid, "devices": devices}


@dataclass
class KeyUploader:
    """One device's PUT /v1/keys and GET /v1/keys/count; keeps what it uploaded."""

    server: KeyServer
    uid: str
    did: str
    uploads: list[tuple[bytes, SignedPreKey, list[OneTimePreKey]]] = field(default_factory=list)

    async def upload_keys(
        self,
        identity_key: bytes,
        signed_prekey: SignedPreKey,
        one_time_prekeys: list[OneTimePreKey],
    ) -> None:
        self.uploads.append((identity_key, signed_prekey, list(one_time_prekeys)))
        devices = self.server.devices.setdefault(self.uid, {})
        published = devices.get(self.did)
        if published is None:
            devices[self.did] = Published(identity_key, signed_prekey, list(one_time_prekeys))
        else:
            published.signed = signed_prekey
            published.one_time.extend(one_time_prekeys)

    async def key_count(self) -> int:
        return self.count

    @property
    def published(self) -> Published:
        return self.server.devices[self.uid][self.did]

    @property
    def count(self) -> int:
        """One-time prekeys the server still holds for this device."""
        return len(self.published.one_time)

    @count.setter
    def count(self, left: int) -> None:
        """The server handed out all but `left` of them."""
        assert left <= self.count
        del self.published.one_time[left:]


class PreKeyStore:
    """A device's prekeys in memory, serving bundles the way the server does."""

    def __init__(self, identity: IdentityKeyPair, *, consume: bool = True) -> None:
        self.identity = identity
        self.signed = SignedPreKey.generate(identity, key_id=1, now=0.0)
        self.one_time = {k.key_id: k for k in OneTimePreKey.generate_batch(100, 5)}
        self.consume = consume
        self.taken: list[int] = []

    def bundle(self, with_one_time: bool = True) -> PreKeyBundle:
        one_time = next(iter(self.one_time.values())) if with_one_time else None
        return PreKeyBundle(
            identity_key=self.identity.public_key,
            signed_prekey_id=self.signed.key_id,
            signed_prekey=self.signed.public_key,
            signed_prekey_signature=self.signed.signature,
            one_time_prekey_id=one_time.key_id if one_time else None,
            one_time_prekey=one_time.public_key if one_time else None,
        )

    def signed_prekey(self, key_id: int) -> SignedPreKey | None:
        return self.signed if key_id == self.signed.key_id else None

    def take_one_time_prekey(self, key_id: int) -> OneTimePreKey | None:
        self.taken.append(key_id)
        if self.consume:
            return self.one_time.pop(key_id, None)
        return self.one_time.get(key_id)


@contextlib.asynccontextmanager
async def serve_http(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on a free local port; its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bundle_json(device_id: str, bundle: PreKeyBundle) -> dict[str, Any]:
    device: dict[str, Any] = {
        "device_id": device_id,
        "identity_key": _b64(bundle.identity_key),
        "signed_prekey": {
            "key_id": bundle.signed_prekey_id,
            "public_key": _b64(bundle.signed_prekey),
            "signature": _b64(bundle.signed_prekey_signature),
        },
    }
    if bundle.one_time_prekey_id is not None and bundle.one_time_prekey is not None:
        device["one_time_prekey"] = {
            "key_id": bundle.one_time_prekey_id,
            "public_key": _b64(bundle.one_time_prekey),
        }
    return device
