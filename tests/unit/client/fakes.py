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

from parley.answers import DeviceBundle, KeyBundles
from parley.crypto import IdentityKeyPair, OneTimePreKey, PreKeyBundle, SignedPreKey
from parley.devices.lists import DeviceList, ListedDevice, sign_list
from parley.groups import chain
from parley.groups.chain import Kind

__all__ = [
    "GroupChain",
    "KeyServer",
    "KeyUploader",
    "PreKeyStore",
    "Published",
    "Signer",
    "serve_http",
]


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
    # each user's account identity: a primary that is not among the test's devices
    # (which are its companions, in the order they uploaded keys), unless `enroll`
    # made one of them the primary
    signers: dict[str, IdentityKeyPair] = field(default_factory=dict)
    primaries: dict[str, str] = field(default_factory=dict)
    lists: dict[str, DeviceList] = field(default_factory=dict)
    unlisted: set[tuple[str, str]] = field(default_factory=set)  # offered, never listed

    def enroll(self, uid: str, did: str, identity: IdentityKeyPair) -> None:
        """Make `did` (with this identity) the primary of `uid`: it signs the lists."""
        self.signers[uid] = identity
        self.primaries[uid] = did

    def device_list(self, uid: str) -> DeviceList | None:
        """`uid`'s signed list as the service holds it: a new version when the devices
        that uploaded keys changed."""
        published = self.devices.get(uid)
        if not published:
            return None
        signer = self.signers.setdefault(uid, IdentityKeyPair.generate())
        primary = self.primaries.get(uid, "f" * 16)
        entries = [ListedDevice(primary, 0, signer.public_key)]
        for did, keys in published.items():
            if did != primary and (uid, did) not in self.unlisted:
                entries.append(ListedDevice(did, len(entries), keys.identity_key))
        before = self.lists.get(uid)
        ids = [(d.device_id, d.identity) for d in entries]
        if before is not None and [(d.device_id, d.identity) for d in before.devices] == ids:
            return before
        version = before.version + 1 if before is not None else 1
        self.lists[uid] = sign_list(signer, uid, version, entries, 1000 * version)
        return self.lists[uid]

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

    async def fetch(self, uid: str) -> KeyBundles:
        """GET /v1/keys/{uid} as `ApiClient.key_bundles` returns it."""
        listed = self.device_list(uid)
        return KeyBundles(self.claim_all(uid), None if listed is None else dict(listed.wire()))

    def answer(self, uid: str) -> dict[str, Any]:
        """GET /v1/keys/{uid} as the service answers it."""
        listed = self.device_list(uid)
        devices = [_bundle_json(d.device_id, d.bundle) for d in self.claim_all(uid)]
        wire = None if listed is None else dict(listed.wire())
        return {"user_id": uid, "devices": devices, "device_list": wire}


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
        self.session_starts: dict[bytes, float] = {}  # base key -> when accepted

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

    def note_session_start(self, base_key: bytes, signed_prekey_id: int, now: float) -> bool:
        if base_key in self.session_starts:
            return False
        self.session_starts[base_key] = now
        return True


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


@dataclass(frozen=True)
class Signer:
    """A primary device that signs group changes: its identity is its account's."""

    user_id: str
    device_id: str
    identity: IdentityKeyPair = field(default_factory=IdentityKeyPair.generate)

    def certificate(self) -> dict[str, str]:
        listed = ListedDevice(self.device_id, 0, self.identity.public_key)
        return sign_list(self.identity, self.user_id, 1, [listed], 1).wire()


@dataclass
class GroupChain:
    """A group's signed chain as an honest service keeps it (tests may tamper)."""

    group_id: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    head: bytes = b""

    @property
    def seq(self) -> int:
        return int(self.entries[-1]["seq"]) if self.entries else 0

    def start_at(self, seq: int) -> None:
        """A group made before chains, at `seq - 1` changes: its chain starts at `seq`."""
        self.entries.append({"seq": seq - 1})  # a placeholder, never served
        self.head = b""

    def sign(
        self,
        signer: Signer,
        kind: Kind,
        members: tuple[str, ...] = (),
        admins: tuple[str, ...] = (),
        *,
        signed_by: Signer | None = None,
    ) -> dict[str, Any]:
        """Append `signer`'s change (signed with `signed_by`'s key, to forge one)."""
        change = chain.sign_change(
            (signed_by or signer).identity,
            group_id=self.group_id,
            seq=self.seq + 1,
            prev=self.head,
            at=1_700_000_000_000 + self.seq,
            author=signer.user_id,
            device=signer.device_id,
            kind=kind,
            name="Climbing" if kind == "create" else "",
            members=sorted(members) if kind in ("create", "add") else members,
            admins=admins,
        )
        item = {**change, "seq": self.seq + 1, "certificate": signer.certificate()}
        self.entries.append(item)
        self.head = chain.change_hash(base64.b64decode(change["body"]))
        return item

    def answer(self, view: dict[str, Any], after: int, page: int = 100) -> dict[str, Any]:
        """A group answer (GET /v1/groups/{id}?changes_after=N) over this chain, in
        pages of `page` changes."""
        changes = [e for e in self.entries if e["seq"] > after and "body" in e]
        return {
            **view,
            "rev": self.seq,
            "head": self.seq,
            "changes": changes[:page],
            "more": len(changes) > page,
        }
