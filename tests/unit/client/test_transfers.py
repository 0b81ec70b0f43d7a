"""`Client.send_file` and `Client.download` against an in-process stand-in for the
HTTP API and the bucket (presigned form in, link out). No WebSocket: the envelope
goes from Alice's outbox to Bob's engine by hand."""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from parley import Client, Endpoints, NotFound, ParleyClientError
from parley.attachments.crypto import IntegrityError
from parley.content import ContactCard, ContentError, Location
from parley.crypto import IdentityKeyPair
from parley.keys import publish_initial_keys
from parley.models import Account, Message, MessageState
from parley.protocol import IncomingMessage
from parley.store import Store, Tokens
from tests.unit.client.fakes import KeyServer, serve_http

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALICE, ALICE_DEV = "a" * 32, "a1" * 8
BOB, BOB_DEV = "b" * 32, "b1" * 8
MB = 1024 * 1024


@dataclass
class Service:
    """What the HTTP API and S3 do for media, in memory; counts what it is asked."""

    url: str = ""
    keys: KeyServer = field(default_factory=KeyServer)
    declared: dict[str, int] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    creates: int = 0
    fetches: int = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * MB)
        app.router.add_get("/v1/keys/{user_id}", self.bundle)
        app.router.add_post("/v1/media", self.create)
        app.router.add_get("/v1/media/{media_id}", self.link)
        app.router.add_post("/bucket", self.upload)
        app.router.add_get("/bucket/{media_id}", self.download)
        return app

    async def bundle(self, request: web.Request) -> web.Response:
        return web.json_response(self.keys.answer(request.match_info["user_id"]))

    async def create(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer access"
        self.creates += 1
        size = (await request.json())["size"]
        media_id = secrets.token_hex(16)
        self.declared[media_id] = size
        upload = {"url": f"{self.url}/bucket", "fields": {"key": media_id}}
        return web.json_response({"media_id": media_id, "upload": upload, "expires_in": 300})

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        media_id = str(form["key"])
        blob = form["file"].file.read()  # type: ignore[union-attr]
        if len(blob) != self.declared.get(media_id):
            return web.Response(status=400, text="EntityTooLarge")  # the policy's size range
        self.blobs[media_id] = blob
        return web.Response(status=204)

    async def link(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        if media_id not in self.blobs:
            error = {"code": "not_found", "message": "no such media"}
            return web.json_response({"error": error}, status=404)
        return web.json_response({"url": f"{self.url}/bucket/{media_id}", "expires_in": 60})

    async def download(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.Response(body=self.blobs[request.match_info["media_id"]])


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    service = Service()
    async with serve_http(service.app()) as url:
        service.url = url
        yield service


async def profile(home: Path, service: Service, uid: str, did: str) -> None:
    """A profile as signup leaves it, its public keys on the service."""
    store = Store.open(home / "profiles" / uid[:5], keyring=None, allow_plaintext=True)
    store.accounts.save(Account(uid, did, "+1555000" + uid[:4]), IdentityKeyPair.generate())
    store.accounts.save_tokens(Tokens("access", "refresh", 10**12))
    await publish_initial_keys(service.keys.uploader(uid, did), store, 0.0)
    store.close()


@pytest.fixture
async def people(tmp_path: Path, service: Service) -> AsyncIterator[tuple[Client, Client]]:
    await profile(tmp_path, service, ALICE, ALICE_DEV)
    await profile(tmp_path, service, BOB, BOB_DEV)
    endpoints = Endpoints(http_url=service.url, ws_url="ws://127.0.0.1:9/unused")
    alice, bob = (
        Client(name, endpoints=endpoints, home=tmp_path, keyring=None, connect=False)
        for name in (ALICE[:5], BOB[:5])
    )
    await alice.open()
    await bob.open()
    alice.store.contacts.add(BOB, "Bob", "+15550000002")
    yield alice, bob
    await alice.close()
    await bob.close()


def hand_over(alice: Client, bob: Client) -> Message:
    """The server's part: Alice's queued envelope reaches Bob's device."""
    entry = alice.store.outbox.items()[-1].entry
    assert entry.payloads is not None
    incoming = IncomingMessage(
        f"m#{entry.client_id}", entry.client_id, ALICE, ALICE_DEV, entry.payloads[BOB_DEV], 1
    )
    assert bob.engine.receive(incoming).stored
    message = bob.store.messages.get(ALICE, entry.client_id)
    assert message is not None
    return message


def photo(path: Path) -> Path:
    Image.effect_noise((640, 480), 60).convert("RGB").save(path, "JPEG", quality=95)
    return path


async def test_a_photo_is_uploaded_encrypted_and_its_descriptor_goes_in_the_message(
    people: tuple[Client, Client], service: Service, tmp_path: Path
) -> None:
    alice, bob = people
    path = photo(tmp_path / "beach.jpg")
    seen: list[tuple[int, int]] = []

    sent = await alice.send_file(
        "Bob", path, caption="the beach", progress=lambda d, t: seen.append((d, t))
    )

    assert sent.state is MessageState.PENDING
    image = sent.attachment
    assert image is not None
    assert (image.kind, image.name, image.mime, image.caption) == (
        "image",
        "beach.jpg",
        "image/jpeg",
        "the beach",
    )
    assert (image.width, image.height) == (640, 480)
    assert image.thumbnail is not None
    assert Image.open(io.BytesIO(image.thumbnail)).format == "JPEG"
    (blob,) = service.blobs.values()
    assert blob != path.read_bytes()
    assert path.read_bytes()[1000:1100] not in blob
    assert seen[-1] == (len(blob), len(blob))
    assert sent.text == "📷 beach.jpg: the beach"

    received = hand_over(alice, bob)
    assert received.attachment == image


async def test_a_download_lands_in_the_profile_media_folder_once(
    people: tuple[Client, Client], service: Service, tmp_path: Path
) -> None:
    alice, bob = people
    data = os.urandom(3 * MB + 123)
    (tmp_path / "notes.bin").write_bytes(data)
    await alice.send_file("Bob", tmp_path / "notes.bin", mime="application/octet-stream")
    received = hand_over(alice, bob)
    seen: list[int] = []

    path = await bob.download(received, progress=lambda d, _t: seen.append(d))

    assert path == bob.store.path.parent / "media" / "notes.bin"
    assert path.read_bytes() == data
    assert seen[-1] == len(next(iter(service.blobs.values())))
    assert bob.message(received.id).file == path
    # asked again (by id, as the CLI does): the same file, nothing fetched
    assert await bob.download(received.id) == path
    assert service.fetches == 1
    # the file was moved away: fetched again
    path.unlink()
    assert await bob.download(received.id) == path
    assert service.fetches == 2
    assert sorted(p.name for p in bob.media_dir.iterdir()) == ["notes.bin"]


async def test_a_tampered_object_is_refused_and_leaves_nothing_in_the_media_folder(
    people: tuple[Client, Client], service: Service, tmp_path: Path
) -> None:
    alice, bob = people
    (tmp_path / "report.pdf").write_bytes(os.urandom(200_000))
    await alice.send_file("Bob", tmp_path / "report.pdf")
    received = hand_over(alice, bob)
    (media_id,) = service.blobs
    blob = bytearray(service.blobs[media_id])
    blob[5000] ^= 0x01
    service.blobs[media_id] = bytes(blob)

    with pytest.raises(IntegrityError):
        await bob.download(received)

    assert list(bob.media_dir.iterdir()) == []
    assert bob.message(received.id).file is None


async def test_only_a_message_with_a_file_can_be_downloaded(
    people: tuple[Client, Client],
) -> None:
    alice, bob = people
    await alice.send_location("Bob", 51.5007, -0.1246, "Big Ben")
    location = hand_over(alice, bob)
    assert location.content == Location(51.5007, -0.1246, "Big Ben")
    with pytest.raises(ParleyClientError, match="carries no file"):
        await bob.download(location)
    with pytest.raises(ParleyClientError, match="no message"):
        await bob.download(location.id + 1000)


async def test_a_contact_card_is_sent_with_every_number(people: tuple[Client, Client]) -> None:
    alice, bob = people
    await alice.send_contact("Bob", "Carol", ["+15550000003", "+15550000004"])
    card = hand_over(alice, bob)
    assert card.content == ContactCard("Carol", ("+15550000003", "+15550000004"))
    await alice.send_contact("Bob", "Dan", "+15550000005")
    assert hand_over(alice, bob).content == ContactCard("Dan", ("+15550000005",))


async def test_bad_input_is_refused_before_anything_is_uploaded_or_queued(
    people: tuple[Client, Client], service: Service, tmp_path: Path
) -> None:
    alice, _ = people
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(ContentError, match="caption"):
        await alice.send_file("Bob", tmp_path / "a.txt", caption="x" * 4001)
    with pytest.raises(ContentError, match="not a file"):
        await alice.send_file("Bob", tmp_path / "missing.txt")
    with pytest.raises(ContentError, match="MIME"):
        await alice.send_file("Bob", tmp_path / "a.txt", mime="not a type")
    with pytest.raises(ValueError, match="lat"):
        await alice.send_location("Bob", 95.0, 0.0)
    with pytest.raises(ValueError, match="phone"):
        await alice.send_contact("Bob", "Eve", [])
    assert service.creates == 0
    assert service.blobs == {}
    assert alice.store.outbox.items() == []
    assert alice.store.messages.history(BOB) == []


async def test_the_media_calls_refuse_bad_ids_and_report_unknown_media(
    people: tuple[Client, Client], service: Service
) -> None:
    alice, _ = people
    with pytest.raises(NotFound):
        await alice.api.media_url("f" * 32)
    with pytest.raises(ValueError, match="media id"):
        await alice.api.media_url("../keys/" + "b" * 24)
    with pytest.raises(ValueError, match="positive size"):
        await alice.api.create_media(0)
    assert service.creates == 0
