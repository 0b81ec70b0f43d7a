"""History for a new companion: the primary's export, the `history` payload, and the
companion's checked, all-or-nothing, idempotent import; the encrypted blob through an
in-process stand-in for the media API and the bucket."""

from __future__ import annotations

import base64
import copy
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from parley.content import Context, Location, Text, TimerChange, with_context
from parley.conversations import payload
from parley.crypto import IdentityKeyPair
from parley.devices.history import (
    HistoryError,
    export_history,
    import_history,
    receive_history,
    send_history,
)
from parley.devices.history import (
    _upload as upload_history,
)
from parley.ids import group_address
from parley.models import Account, Contact, Direction, Group, HistoryImported, MessageState
from parley.store import Store, Tokens
from tests.unit.client.fakes import serve_http

on_the_loop = pytest.mark.asyncio(loop_scope="session")

ALICE, PHONE, LAPTOP = "a" * 32, "a1" * 8, "a2" * 8
BOB, CAROL = "b" * 32, "c" * 32
GROUP = "f" * 32
NOW = 1_800_000_000.0
DAY_MS = 86_400_000
NOW_MS = int(NOW * 1000)


def open_store(tmp: Path, did: str) -> Store:
    store = Store.open(tmp / did, keyring=None, allow_plaintext=True)
    store.accounts.save(Account(ALICE, did, "+15550000001"), IdentityKeyPair.generate())
    store.accounts.save_tokens(Tokens("access", "refresh", 10**12))
    return store


def add(
    store: Store,
    peer: str,
    sender: str,
    client_id: str,
    text: str,
    ts: int,
    state: MessageState,
    content: Any = None,
) -> None:
    direction = Direction.OUT if sender == ALICE else Direction.IN
    stored = store.messages.add(
        peer=peer,
        direction=direction,
        sender=sender,
        client_id=client_id,
        text=text,
        ts=ts,
        state=state,
        content=content if content is not None else Text(text),
    )
    assert stored is not None


@pytest.fixture
def phone(tmp_path: Path) -> Store:
    """The primary: two contacts, a group, and messages old and recent."""
    store = open_store(tmp_path, PHONE)
    store.contacts.add(BOB, "Bob", "+15550000002")
    store.contacts.add(CAROL, "Carol", None)
    store.groups.save(Group(GROUP, "Climbing", 3, (ALICE, BOB, CAROL), (ALICE,), ALICE, 1), 0)
    add(store, BOB, BOB, "0" * 32, "too old", NOW_MS - 91 * DAY_MS, MessageState.READ)
    add(store, BOB, ALICE, "1" * 32, "hi Bob", NOW_MS - 30 * DAY_MS, MessageState.READ)
    add(store, BOB, BOB, "2" * 32, "hi Alice", NOW_MS - 29 * DAY_MS, MessageState.READ)
    add(store, BOB, ALICE, "3" * 32, "coffee?", NOW_MS - DAY_MS, MessageState.DELIVERED)
    add(
        store,
        group_address(GROUP),
        CAROL,
        "4" * 32,
        "Saturday?",
        NOW_MS - 5000,
        MessageState.RECEIVED,
    )
    add(
        store,
        group_address(GROUP),
        ALICE,
        "5" * 32,
        "📍 Crag",
        NOW_MS - 4000,
        MessageState.SENT,
        Location(45.0, 6.0, "Crag"),
    )
    add(store, BOB, ALICE, "6" * 32, "on my way", NOW_MS - 1000, MessageState.SENT)
    return store


@pytest.fixture
def laptop(tmp_path: Path) -> Store:
    return open_store(tmp_path, LAPTOP)


def shown(store: Store, peer: str) -> list[tuple[str, str, str, MessageState]]:
    return [
        (m.sender, m.client_id, m.text, m.state) for m in store.messages.history(peer, limit=100)
    ]


def everything(store: Store) -> tuple[object, ...]:
    return (
        shown(store, BOB),
        shown(store, group_address(GROUP)),
        store.contacts.all(),
        store.groups.all(include_inactive=True),
    )


def exported(phone: Store) -> bytes:
    data, _, _ = export_history(phone, phone.accounts.require(), now=NOW)
    return data


# --- export and import ----------------------------------------------------------------


def test_the_last_90_days_go_across_in_order_with_their_ticks(phone: Store, laptop: Store) -> None:
    data, count, conversations = export_history(phone, phone.accounts.require(), now=NOW)
    assert (count, conversations) == (6, 2)  # "too old" stays behind

    result = import_history(laptop, laptop.accounts.require(), data, now=NOW)

    assert result == HistoryImported(messages=6, conversations=2)
    assert shown(laptop, BOB) == shown(phone, BOB)[1:]
    assert [text for _, _, text, _ in shown(laptop, BOB)] == [
        "hi Bob",
        "hi Alice",
        "coffee?",
        "on my way",
    ]
    assert shown(laptop, group_address(GROUP)) == shown(phone, group_address(GROUP))
    (located,) = [m for m in laptop.messages.history(group_address(GROUP)) if m.outgoing]
    assert located.content == Location(45.0, 6.0, "Crag")
    assert located.direction is Direction.OUT
    assert {(c.user_id, c.name) for c in laptop.contacts.all()} == {(BOB, "Bob"), (CAROL, "Carol")}
    group = laptop.groups.get(GROUP)
    assert group is not None
    assert (group.name, group.members, group.admins) == ("Climbing", (ALICE, BOB, CAROL), (ALICE,))
    assert laptop.groups.stale() == [GROUP]  # read again from the service


def test_importing_again_or_what_is_already_here_changes_nothing(
    phone: Store, laptop: Store
) -> None:
    data = exported(phone)
    account = laptop.accounts.require()
    # the laptop already has one of them (it arrived after linking) and a name for Bob
    laptop.contacts.add(BOB, "Bobby", None)
    add(laptop, BOB, ALICE, "6" * 32, "on my way", NOW_MS - 1000, MessageState.DELIVERED)

    first = import_history(laptop, account, data, now=NOW)
    after_first = everything(laptop)
    second = import_history(laptop, account, data, now=NOW)

    assert first == HistoryImported(messages=5, conversations=2)
    assert second == HistoryImported(messages=0, conversations=0)
    assert everything(laptop) == after_first
    assert len(shown(laptop, BOB)) == 4  # no duplicate
    assert laptop.contacts.get(BOB).name == "Bobby"  # type: ignore[union-attr]
    kept = laptop.messages.get(ALICE, "6" * 32)
    assert kept is not None
    assert kept.state is MessageState.DELIVERED


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], object]]]:
    def message(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda d: d["messages"][i]

    def set_in(path: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Any:
        return lambda d: path(d).__setitem__(key, value)

    return [
        ("another account", lambda d: d.__setitem__("user_id", BOB)),
        ("unknown version", lambda d: d.__setitem__("v", 2)),
        ("extra field", lambda d: d.__setitem__("extra", 1)),
        ("missing field", lambda d: d.pop("groups")),
        ("messages not a list", lambda d: d.__setitem__("messages", {})),
        ("bad sender", set_in(message(0), "sender", "nope")),
        ("bad client id", set_in(message(0), "client_id", "x" * 300)),
        ("ours from another", set_in(message(0), "sender", BOB)),
        ("theirs from us", set_in(message(1), "sender", ALICE)),
        ("received as read-by-them", set_in(message(1), "state", "delivered")),
        ("ours as received", set_in(message(0), "state", "received")),
        ("unknown state", set_in(message(0), "state", "teleported")),
        ("bad conversation", set_in(message(0), "peer", "g:nope")),
        ("1:1 from a third person", set_in(message(1), "sender", CAROL)),
        ("bad time", set_in(message(0), "ts", -1)),
        ("bool time", set_in(message(0), "ts", True)),
        ("bad content", set_in(message(0), "content", {"v": 1, "kind": "text", "text": ""})),
        ("unknown content kind", set_in(message(0), "content", {"v": 1, "kind": "poll"})),
        ("content a string", set_in(message(0), "content", "hi")),
        ("message extra field", set_in(message(0), "extra", 1)),
        ("group admin not a member", set_in(lambda d: d["groups"][0], "admins", ["d" * 32])),
        ("group bad id", set_in(lambda d: d["groups"][0], "group_id", "g")),
        ("group version 0", set_in(lambda d: d["groups"][0], "version", 0)),
        ("contact bad id", set_in(lambda d: d["contacts"][0], "user_id", 7)),
        ("contact control chars", set_in(lambda d: d["contacts"][0], "name", "Bob\x1b[2J")),
        ("contact long name", set_in(lambda d: d["contacts"][0], "name", "B" * 300)),
    ]


@pytest.mark.parametrize(("case", "mutate"), _mutations(), ids=[c for c, _ in _mutations()])
def test_a_bad_history_is_refused_whole_and_nothing_changes(
    phone: Store, laptop: Store, case: str, mutate: Callable[[dict[str, Any]], object]
) -> None:
    document = json.loads(exported(phone))
    bad = copy.deepcopy(document)
    mutate(bad)
    laptop.contacts.add(BOB, None, None)
    add(laptop, BOB, BOB, "9" * 32, "already here", NOW_MS, MessageState.RECEIVED)
    before = everything(laptop)

    with pytest.raises(HistoryError):
        import_history(laptop, laptop.accounts.require(), json.dumps(bad).encode(), now=NOW)

    assert everything(laptop) == before


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"[]", b"null", b'{"v": 1}', b"\xff\xfe", b"[" * 100_000]
)
def test_what_is_not_a_history_document_is_refused(laptop: Store, data: bytes) -> None:
    before = everything(laptop)
    with pytest.raises(HistoryError):
        import_history(laptop, laptop.accounts.require(), data, now=NOW)
    assert everything(laptop) == before


def test_a_refused_message_late_in_the_list_keeps_the_earlier_ones_out_too(
    phone: Store, laptop: Store
) -> None:
    document = json.loads(exported(phone))
    document["messages"][-1]["state"] = "received"  # ours, as if received
    with pytest.raises(HistoryError):
        import_history(laptop, laptop.accounts.require(), json.dumps(document).encode(), now=NOW)
    assert laptop.messages.history(BOB) == []
    assert laptop.contacts.all() == []


def test_an_export_too_large_keeps_the_newest_messages(phone: Store) -> None:
    full, count, _ = export_history(phone, phone.accounts.require(), now=NOW)
    data, kept, _ = export_history(
        phone, phone.accounts.require(), now=NOW, max_bytes=len(full) - 10
    )
    assert 0 < kept < count
    texts = [m["content"].get("text") for m in json.loads(data)["messages"]]
    assert texts[-1] == "on my way"


# --- the history payload ----------------------------------------------------------------


def history_payload(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "v": 1,
        "kind": "history",
        "device": LAPTOP,
        "media_id": "e" * 32,
        "key": base64.b64encode(b"k" * 32).decode(),
        "header": base64.b64encode(b"h" * 24).decode(),
        "sha256": "0" * 64,
        "size": 1234,
    }
    document.update(changes)
    return {k: v for k, v in document.items() if v is not ...}


def test_the_history_payload_round_trips() -> None:
    sent = payload.HistoryPayload(LAPTOP, "e" * 32, b"k" * 32, b"h" * 24, "0" * 64, 1234)
    assert payload.decode_any(payload.encode_history(sent)) == sent
    assert payload.decode_any(json.dumps(history_payload()).encode()) == sent


@pytest.mark.parametrize(
    "changes",
    [
        {"device": "nope"},
        {"device": ...},
        {"media_id": "E" * 32},
        {"key": base64.b64encode(b"k" * 31).decode()},
        {"key": "not base64!"},
        {"header": base64.b64encode(b"h" * 25).decode()},
        {"sha256": "g" * 64},
        {"sha256": "0" * 63},
        {"size": 0},
        {"size": True},
        {"size": payload.MAX_HISTORY_BYTES + 1},
        {"v": 2},
        {"extra": 1},
    ],
)
def test_a_malformed_history_payload_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(payload.UnsupportedContent):
        payload.decode_any(json.dumps(history_payload(**changes)).encode())


def test_a_sent_copy_cannot_carry_a_history() -> None:
    copy_doc = {"v": 1, "kind": "sent", "to": BOB, "id": "1" * 32, "content": history_payload()}
    with pytest.raises(payload.UnsupportedContent):
        payload.decode_any(json.dumps(copy_doc).encode())


# --- the encrypted blob through the media API ----------------------------------------------


@dataclass
class Media:
    """POST /v1/media, GET /v1/media/{id} and the bucket, in memory."""

    url: str = ""
    blobs: dict[str, bytes] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/media", self.create)
        app.router.add_get("/v1/media/{media_id}", self.link)
        app.router.add_post("/bucket", self.upload)
        app.router.add_get("/bucket/{media_id}", self.download)
        return app

    async def create(self, request: web.Request) -> web.Response:
        media_id = secrets.token_hex(16)
        upload = {"url": f"{self.url}/bucket", "fields": {"key": media_id}}
        return web.json_response({"media_id": media_id, "upload": upload, "expires_in": 300})

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.blobs[str(form["key"])] = form["file"].file.read()  # type: ignore[union-attr]
        return web.Response(status=204)

    async def link(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        return web.json_response({"url": f"{self.url}/bucket/{media_id}", "expires_in": 60})

    async def download(self, request: web.Request) -> web.Response:
        return web.Response(body=self.blobs[request.match_info["media_id"]])


@pytest.fixture
async def media() -> AsyncIterator[tuple[Media, aiohttp.ClientSession]]:
    service = Media()
    async with serve_http(service.app()) as url, aiohttp.ClientSession() as http:
        service.url = url
        yield service, http


def api_for(url: str, store: Store, http: aiohttp.ClientSession) -> Any:
    from parley.api import ApiClient

    return ApiClient(url, http, store.accounts)


async def _sent(
    phone: Store, media: tuple[Media, aiohttp.ClientSession]
) -> tuple[payload.HistoryPayload, bytes]:
    service, http = media
    data = exported(phone)
    attachment = await upload_history(
        http, api_for(service.url, phone, http), data, phone.path.parent
    )
    assert data not in service.blobs[attachment.media_id]  # only ciphertext is stored
    assert b"hi Bob" not in service.blobs[attachment.media_id]
    sent = payload.HistoryPayload(
        LAPTOP,
        attachment.media_id,
        attachment.key,
        attachment.header,
        attachment.sha256,
        attachment.size,
    )
    return sent, data


async def _receive(
    history: payload.HistoryPayload, laptop: Store, media: tuple[Media, aiohttp.ClientSession]
) -> HistoryImported:
    """The companion (`laptop`) downloads and imports `history` from the stand-in."""
    service, http = media
    return await receive_history(
        history,
        store=laptop,
        account=laptop.accounts.require(),
        api=api_for(service.url, laptop, http),
        http=http,
    )


@on_the_loop
async def test_the_companion_downloads_verifies_and_imports(
    phone: Store, laptop: Store, media: tuple[Media, aiohttp.ClientSession]
) -> None:
    sent, _ = await _sent(phone, media)
    result = await _receive(sent, laptop, media)
    assert result == HistoryImported(6, 2)
    assert shown(laptop, BOB) == shown(phone, BOB)[1:]
    # nothing readable is left behind in the profile
    assert [p.name for p in laptop.path.parent.iterdir() if p.name.startswith(".history")] == []
    assert [p.name for p in phone.path.parent.iterdir() if p.name.startswith(".history")] == []


@on_the_loop
async def test_a_history_whose_digest_does_not_match_is_refused(
    phone: Store, laptop: Store, media: tuple[Media, aiohttp.ClientSession]
) -> None:
    sent, _ = await _sent(phone, media)
    service, _ = media
    before = everything(laptop)
    wrong_digest = payload.HistoryPayload(
        sent.device, sent.media_id, sent.key, sent.header, "0" * 64, sent.size
    )
    blob = bytearray(service.blobs[sent.media_id])
    with pytest.raises(HistoryError, match="did not verify"):
        await _receive(wrong_digest, laptop, media)
    # a tampered object under the right digest fails too
    blob[10] ^= 1
    service.blobs[sent.media_id] = bytes(blob)
    with pytest.raises(HistoryError, match="did not verify"):
        await _receive(sent, laptop, media)
    # and a history meant for another of the account's devices is not imported
    other = payload.HistoryPayload("a3" * 8, sent.media_id, sent.key, sent.header, "0" * 64, 9)
    with pytest.raises(HistoryError, match="another"):
        await _receive(other, laptop, media)
    assert everything(laptop) == before
    assert [p.name for p in laptop.path.parent.iterdir() if p.name.startswith(".history")] == []


# --- the whole way: primary's outbox -> the companion's engine -> imported ------------------


@dataclass
class LinkingApi:
    """The API calls the history needs: the account's devices (the companion has
    finished linking) and the media ones, to the stand-in."""

    media: Any
    ready: bool = True
    asked: int = 0

    async def devices(self) -> list[Any]:
        from parley.models import LinkedDevice

        self.asked += 1
        return [LinkedDevice(LAPTOP, 0, False, self.ready or self.asked > 2, None)]

    async def create_media(self, size: int) -> dict[str, Any]:
        return await self.media.create_media(size)  # type: ignore[no-any-return]

    async def media_url(self, media_id: str) -> str:
        return await self.media.media_url(media_id)  # type: ignore[no-any-return]


@on_the_loop
async def test_the_primary_sends_and_only_the_new_companion_imports(
    tmp_path: Path, media: tuple[Media, aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    from parley.protocol import IncomingMessage
    from tests.unit.client.fakes import KeyServer
    from tests.unit.client.test_engine import envelope, make_engine

    service, http = media
    directory = KeyServer()
    phone = await make_engine(tmp_path / "p", directory, ALICE, PHONE)
    laptop = await make_engine(tmp_path / "l", directory, ALICE, LAPTOP)
    tablet = await make_engine(tmp_path / "t", directory, ALICE, "a3" * 8)
    for engine in (phone, laptop):
        engine.store.accounts.save_tokens(Tokens("access", "refresh", 10**12))
    phone.store.contacts.add(BOB, "Bob", None)
    add(phone.store, BOB, BOB, "2" * 32, "hi Alice", NOW_MS - DAY_MS, MessageState.READ)
    add(phone.store, BOB, ALICE, "3" * 32, "hi Bob", NOW_MS - 1000, MessageState.DELIVERED)
    queued: list[Any] = []
    api = LinkingApi(api_for(service.url, phone.store, http), ready=False)

    sent = await send_history(
        LAPTOP,
        store=phone.store,
        sealer=phone.sealer,
        api=api,  # type: ignore[arg-type]
        http=http,
        queue=queued.append,
        wait_s=30,
        poll_s=0.01,
        clock=lambda: NOW,
    )

    assert api.asked == 3  # it waited until the companion had finished linking
    (entry,) = queued
    assert (sent.messages, sent.conversations, sent.client_id) == (2, 1, entry.client_id)
    assert entry.to == ALICE
    assert set(entry.payloads or {}) == {LAPTOP, "a3" * 8}  # the service wants every device
    assert phone.store.outbox.plaintext(entry.client_id) is not None  # survives a restart
    # the other device of the account skips it; the new companion keeps where it is
    for engine in (tablet, laptop):
        await engine.sealer.learn_device(ALICE, PHONE)  # as Inbound does first
    with caplog.at_level("INFO", logger="parley"):
        skipped = tablet.receive(envelope(entry, ALICE, PHONE, "a3" * 8))
    assert skipped.stored
    assert skipped.history is None
    assert "history for another of our devices" in caplog.text
    arrived = laptop.receive(envelope(entry, ALICE, PHONE, LAPTOP))
    assert arrived.history is not None
    assert arrived.history.device == LAPTOP
    imported = await receive_history(
        arrived.history,
        store=laptop.store,
        account=laptop.account,
        api=api_for(service.url, laptop.store, http),
        http=http,
    )
    assert imported == HistoryImported(2, 1)
    assert shown(laptop.store, BOB) == shown(phone.store, BOB)
    # a contact cannot hand this device a history
    carol = await make_engine(tmp_path / "c", directory, CAROL, "c1" * 8)
    _, hello, _ = await carol.prepare(Contact(ALICE, "Alice", None), "hi")
    await laptop.sealer.learn_device(CAROL, "c1" * 8)
    laptop.receive(envelope(hello, CAROL, "c1" * 8, LAPTOP))
    session = carol.store.sessions.get(ALICE, LAPTOP)
    assert session is not None
    body = session.encrypt(payload.encode_history(arrived.history))
    with caplog.at_level("WARNING", logger="parley"):
        forged = laptop.receive(
            IncomingMessage("m#h", "h" * 32, CAROL, "c1" * 8, base64.b64encode(body).decode(), 5)
        )
    assert forged.history is None
    assert "history from another account" in caplog.text


def test_disappearing_messages_and_timers_go_across_and_keep_disappearing(
    phone: Store, laptop: Store
) -> None:
    day = 24 * 3600
    add(phone, BOB, BOB, "7" * 32, "⏱ on", NOW_MS - 3 * DAY_MS, MessageState.READ, TimerChange(day))
    phone.messages.set_timer(BOB, day, BOB, NOW_MS - 3 * DAY_MS)
    timed = Context(timer=day)
    add(
        phone,
        BOB,
        BOB,
        "8" * 32,
        "gone",
        NOW_MS - 2 * DAY_MS,
        MessageState.READ,
        with_context(Text("gone"), timed),
    )
    add(
        phone,
        BOB,
        ALICE,
        "9" * 32,
        "soon",
        NOW_MS - 1000,
        MessageState.SENT,
        with_context(Text("soon"), timed),
    )

    import_history(laptop, laptop.accounts.require(), exported(phone), now=NOW)

    texts = [text for _, _, text, _ in shown(laptop, BOB)]
    assert "gone" not in texts  # its day was over: it does not come back here
    assert "soon" in texts
    (soon,) = [m for m in laptop.messages.history(BOB) if m.text == "soon"]
    assert soon.expires_at == NOW_MS - 1000 + day * 1000
    assert laptop.messages.timer_of(BOB) == day  # what the laptop sends carries it too
