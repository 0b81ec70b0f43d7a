"""Every message kind through the SDK's payload, engine and store, without a network:
what Alice's engine encrypts, Bob's engine decrypts, types and keeps; and what a
malformed descriptor does (a warning, nothing stored, the session intact)."""

from __future__ import annotations

import base64
import io
import json
import logging
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from parley.content import Attachment, ContactCard, Content, Location, Text
from parley.conversations import payload
from parley.crypto import IdentityKeyPair
from parley.engine import Engine
from parley.keys import publish_initial_keys
from parley.models import Account, Direction, MessageReceived, MessageState
from parley.protocol import IncomingMessage, OutboxEntry
from parley.store import SCHEMA_VERSION, Store
from tests.unit.client.fakes import KeyServer

ALICE, BOB = "a" * 32, "b" * 32
ALICE_DEV, BOB_DEV = "a1" * 8, "b1" * 8


def thumbnail() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def attachment(kind: str = "image", **changes: Any) -> Attachment:
    mime = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/ogg"}.get(
        kind, "application/pdf"
    )
    base = Attachment(
        kind=kind,  # type: ignore[arg-type]
        media_id="0123456789abcdef" * 2,
        key=bytes(range(32)),
        header=bytes(range(24)),
        sha256="ab" * 32,
        size=2_100_000,
        mime=mime,
        name=f"file.{mime.split('/')[1]}",
    )
    return replace(base, **changes)


KINDS: dict[str, Content] = {
    "text": Text("hi Bob, with\ntwo lines"),
    "image": attachment(
        "image", thumbnail=thumbnail(), width=4032, height=3024, caption="the view"
    ),
    "video": attachment("video"),
    "audio": attachment("audio"),
    "document": attachment("document", name="report.pdf"),
    "location": Location(48.8584, 2.2945, "Eiffel Tower"),
    "unnamed location": Location(-33.8568, 151.2153),
    "contact": ContactCard("Carol", ("+15550000003", "+44 20 7946 0958")),
}


# --- payload --------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_round_trips_through_the_payload(name: str) -> None:
    content = KINDS[name]
    assert payload.decode(payload.encode(content)) == content


def test_a_text_encodes_as_the_version_1_text_document() -> None:
    assert json.loads(payload.encode_text("hi")) == {"v": 1, "kind": "text", "text": "hi"}


@pytest.mark.parametrize("text", ["", "   ", "x" * (payload.MAX_TEXT_CHARS + 1)])
def test_an_empty_or_oversized_text_is_refused_before_anything_is_encrypted(text: str) -> None:
    with pytest.raises(ValueError, match="text"):
        payload.encode_text(text)


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("text", "hi Bob, with\ntwo lines"),
        ("image", "📷 file.jpeg: the view"),
        ("video", "🎬 file.mp4"),
        ("audio", "🎵 file.ogg"),
        ("document", "📎 report.pdf"),
        ("location", "📍 Eiffel Tower"),
        ("unnamed location", "📍 Location"),
        ("contact", "👤 Carol"),
    ],
)
def test_each_kind_is_described_in_one_line(name: str, line: str) -> None:
    assert payload.describe(KINDS[name]) == line


# --- two engines ------------------------------------------------------------------------


async def engine(tmp_path: Path, server: KeyServer, uid: str, did: str) -> Engine:
    store = Store.open(tmp_path / uid[:4], keyring=None, allow_plaintext=True)
    store.accounts.save(Account(uid, did, "+1555000" + uid[:4]), IdentityKeyPair.generate())
    await publish_initial_keys(server.uploader(uid, did), store, 1000.0)
    return Engine(store, server.fetch, clock=lambda: 2000.0)


@pytest.fixture
async def engines(tmp_path: Path) -> tuple[Engine, Engine]:
    server = KeyServer()
    alice = await engine(tmp_path, server, ALICE, ALICE_DEV)
    bob = await engine(tmp_path, server, BOB, BOB_DEV)
    alice.store.contacts.add(BOB, "Bob", "+15550000002")
    return alice, bob


def delivered(entry: OutboxEntry, body: str | None = None) -> IncomingMessage:
    assert entry.payloads is not None
    return IncomingMessage(
        server_id=f"m#{entry.client_id}",
        client_id=entry.client_id,
        sender=ALICE,
        sender_device=ALICE_DEV,
        body=body if body is not None else entry.payloads[BOB_DEV],
        ts=1_700_000_000_000,
    )


async def send(alice: Engine, content: str | Content) -> OutboxEntry:
    contact = alice.store.contacts.get(BOB)
    assert contact is not None
    _, entry, _ = await alice.prepare(contact, content)
    return entry


@pytest.mark.parametrize("name", KINDS)
async def test_every_kind_arrives_typed_and_is_kept_with_its_content(
    engines: tuple[Engine, Engine], name: str
) -> None:
    alice, bob = engines
    content = KINDS[name]
    entry = await send(alice, content)

    result = bob.receive(delivered(entry))

    assert result.stored
    (event,) = result.events
    assert isinstance(event, MessageReceived)
    assert event.content == content
    assert event.message.kind == content.kind
    assert event.message.text == payload.describe(content)
    (kept,) = bob.store.messages.history(ALICE)
    assert (kept.content, kept.text, kept.state) == (
        content,
        event.message.text,
        MessageState.RECEIVED,
    )
    (mine,) = alice.store.messages.history(BOB)
    assert (mine.content, mine.state) == (content, MessageState.PENDING)


async def test_a_text_keeps_its_text_and_is_stored_as_before(
    engines: tuple[Engine, Engine],
) -> None:
    alice, bob = engines
    bob.receive(delivered(await send(alice, "plain hello")))
    (message,) = bob.store.messages.history(ALICE)
    assert (message.text, message.content, message.attachment) == (
        "plain hello",
        Text("plain hello"),
        None,
    )
    row = bob.store._db.conn.execute("SELECT content FROM messages").fetchone()
    assert row == (None,)  # a text needs nothing beside its text


async def test_an_attachment_survives_closing_and_reopening_the_profile(
    engines: tuple[Engine, Engine], tmp_path: Path
) -> None:
    alice, bob = engines
    image = KINDS["image"]
    bob.receive(delivered(await send(alice, image)))
    bob.store.close()

    again = Store.open(tmp_path / BOB[:4], keyring=None, allow_plaintext=True)
    (message,) = again.messages.history(ALICE)
    assert message.attachment == image
    assert message.attachment is not None
    assert message.attachment.key == image.key
    assert again.messages.by_id(message.id) == message
    again.close()


async def test_where_a_download_was_saved_is_remembered(
    engines: tuple[Engine, Engine], tmp_path: Path
) -> None:
    alice, bob = engines
    bob.receive(delivered(await send(alice, KINDS["document"])))
    (message,) = bob.store.messages.history(ALICE)
    assert message.file is None

    saved = tmp_path / "media" / "report.pdf"
    bob.store.messages.set_file(message.id, saved)
    assert bob.store.messages.by_id(message.id).file == saved  # type: ignore[union-attr]
    bob.store.messages.set_file(message.id, None)
    assert bob.store.messages.by_id(message.id).file is None  # type: ignore[union-attr]
    assert bob.store.messages.by_id(message.id + 99) is None


# --- malformed descriptors -----------------------------------------------------------


def _good() -> dict[str, Any]:
    return attachment("image", thumbnail=thumbnail()).to_dict()


BAD: dict[str, Any] = {
    "media id not hex": {**_good(), "media_id": "../../other-users-object"},
    "media id missing": {k: v for k, v in _good().items() if k != "media_id"},
    "short key": {**_good(), "key": base64.b64encode(bytes(16)).decode()},
    "key not base64": {**_good(), "key": "***"},
    "header missing": {k: v for k, v in _good().items() if k != "header"},
    "hash in capitals": {**_good(), "sha256": "AB" * 32},
    "negative size": {**_good(), "size": -1},
    "size as text": {**_good(), "size": "2100000"},
    "size as bool": {**_good(), "size": True},
    "not a MIME type": {**_good(), "mime": "jpeg"},
    "image that is a PDF": {**_good(), "mime": "application/pdf"},
    "name with a path": {**_good(), "name": "../../.bashrc"},
    "name with an escape": {**_good(), "name": "a\x1b[2Jb.jpg"},
    "thumbnail not a JPEG": {**_good(), "thumbnail": base64.b64encode(b"GIF89a...").decode()},
    "thumbnail too large": {
        **_good(),
        "thumbnail": base64.b64encode(b"\xff\xd8\xff" + bytes(9000)).decode(),
    },
    "unknown kind": {**_good(), "kind": "sticker"},
    "future version": {**_good(), "v": 2},
    "latitude off the globe": {"v": 1, "kind": "location", "lat": 91, "lon": 0},
    "longitude as text": {"v": 1, "kind": "location", "lat": 1, "lon": "east"},
    "latitude not finite": {"v": 1, "kind": "location", "lat": float("nan"), "lon": 0},
    "card without phones": {"v": 1, "kind": "contact", "name": "Carol", "phones": []},
    "card phone not a number": {"v": 1, "kind": "contact", "name": "C", "phones": ["call me"]},
    "a list": [1, 2, 3],
}


@pytest.mark.parametrize("case", BAD)
async def test_a_malformed_descriptor_is_dropped_with_a_warning_and_nothing_breaks(
    engines: tuple[Engine, Engine], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = engines
    bob.receive(delivered(await send(alice, "first")))
    session = alice.store.sessions.get(BOB, BOB_DEV)
    assert session is not None
    document = json.dumps(BAD[case]).encode()
    body = base64.b64encode(session.encrypt(document)).decode()
    alice.store.sessions.save(BOB, BOB_DEV, session, 0.0)
    forged = IncomingMessage("m#bad", "bad-1", ALICE, ALICE_DEV, body, 1_700_000_000_001)

    with caplog.at_level(logging.WARNING, logger="parley"):
        result = bob.receive(forged)

    assert result.stored  # authentic: acked, so the server never sends it again
    assert result.events == []
    assert any("dropped bad-1" in r.getMessage() for r in caplog.records)
    assert [m.text for m in bob.store.messages.history(ALICE)] == ["first"]
    # the session moved on with it: the next good message still opens
    assert bob.receive(delivered(await send(alice, "after"))).stored
    assert [m.text for m in bob.store.messages.history(ALICE)] == ["first", "after"]


async def test_a_payload_that_is_not_json_is_dropped_with_a_warning(
    engines: tuple[Engine, Engine], caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = engines
    bob.receive(delivered(await send(alice, "first")))
    session = alice.store.sessions.get(BOB, BOB_DEV)
    assert session is not None
    body = base64.b64encode(session.encrypt(b"\xff\xfe not json")).decode()
    with caplog.at_level(logging.WARNING, logger="parley"):
        result = bob.receive(IncomingMessage("m#x", "junk", ALICE, ALICE_DEV, body, 1))
    assert result.stored
    assert result.events == []
    assert "not JSON" in caplog.text
    assert len(bob.store.messages.history(ALICE)) == 1


async def test_a_bad_content_is_refused_before_anything_is_stored_or_encrypted(
    engines: tuple[Engine, Engine],
) -> None:
    alice, _ = engines
    with pytest.raises(ValueError, match="text must not be empty"):
        await send(alice, "")
    assert alice.store.messages.history(BOB) == []
    assert alice.store.outbox.items() == []
    with pytest.raises(ValueError, match="lat must be between"):
        Location(120.0, 0.0)


# --- the store's schema ---------------------------------------------------------------


def test_a_profile_from_before_media_is_upgraded_and_keeps_its_messages(tmp_path: Path) -> None:
    store = Store.open(tmp_path, keyring=None, allow_plaintext=True)
    store.accounts.save(Account(BOB, BOB_DEV, "+15550000002"), IdentityKeyPair.generate())
    store.messages.add(
        peer=ALICE,
        direction=Direction.IN,
        sender=ALICE,
        client_id="old",
        text="from the old days",
        ts=1,
        state=MessageState.RECEIVED,
    )
    store.close()
    # what version 1 of the store looked like
    with sqlite3.connect(tmp_path / "parley.db") as db:
        db.execute("ALTER TABLE messages DROP COLUMN content")
        db.execute("ALTER TABLE messages DROP COLUMN file")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()

    store = Store.open(tmp_path, keyring=None, allow_plaintext=True)
    (old,) = store.messages.history(ALICE)
    assert (old.text, old.content) == ("from the old days", Text("from the old days"))
    new = store.messages.add(
        peer=ALICE,
        direction=Direction.IN,
        sender=ALICE,
        client_id="new",
        text="📍 Home",
        ts=2,
        state=MessageState.RECEIVED,
        content=Location(1.5, 2.5, "Home"),
    )
    assert new is not None
    assert store.messages.by_id(new.id) == new
    version = store._db.conn.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'"
    ).fetchone()
    assert version == (str(SCHEMA_VERSION),)
    store.close()


def test_attachment_keys_and_saved_paths_are_sealed_at_rest(tmp_path: Path) -> None:
    store = Store.open(tmp_path, passphrase="correct horse", kdf_limits=(1, 8192))
    store.accounts.save(Account(BOB, BOB_DEV, "+15550000002"), IdentityKeyPair.generate())
    secret = attachment("document", key=b"K" * 32, name="secret-plans.pdf")
    message = store.messages.add(
        peer=ALICE,
        direction=Direction.IN,
        sender=ALICE,
        client_id="c1",
        text=payload.describe(secret),
        ts=1,
        state=MessageState.RECEIVED,
        content=secret,
    )
    assert message is not None
    store.messages.set_file(message.id, tmp_path / "media" / "secret-plans.pdf")
    store.close()
    for file in tmp_path.glob("parley.db*"):
        raw = file.read_bytes()
        assert b"secret-plans" not in raw
        assert base64.b64encode(b"K" * 32) not in raw
        assert b"K" * 32 not in raw
