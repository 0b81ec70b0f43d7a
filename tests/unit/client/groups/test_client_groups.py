"""A whole `Client` in groups against a scripted service (aiohttp + websockets on
loopback): a stale group send is caught up with and resent under its client id;
a member the service lists without an admin's signed change gets no sender key;
and whatever a hostile service sends about groups, the client stays up, acks
it, and keeps its store intact."""

from __future__ import annotations

import asyncio
import json
import logging
from base64 import b64decode
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from parley import Client, Endpoints, MessageState, ParleyClientError, SendFailed
from parley.answers import KeyBundles, b64
from parley.crypto import IdentityKeyPair
from parley.crypto.sender_keys import SenderKey
from parley.engine import Engine
from parley.groups.chain import change_hash as chain_hash
from parley.keys import publish_initial_keys
from parley.models import (
    Account,
    Group,
    GroupMembersUnverified,
    GroupUpdated,
    MessageReceived,
)
from parley.protocol import IncomingMessage
from parley.store import OwnSenderKey, Store, Tokens
from tests.unit.client.fakes import GroupChain, KeyServer, KeyUploader, Signer, serve_http

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALICE, BOB, CAROL, DAVE, ERIN = "a" * 32, "b" * 32, "c" * 32, "d" * 32, "e" * 32
DEVICES = {ALICE: "a1" * 8, BOB: "b1" * 8, CAROL: "c1" * 8, DAVE: "d1" * 8, ERIN: "e1" * 8}
GID, STRANGER_GID = "0f" * 16, "1e" * 16
WAIT_S = 10.0


@dataclass
class Service:
    """Keys, one group and a WebSocket script, as the test wants them."""

    keys: KeyServer = field(default_factory=KeyServer)
    group: dict[str, Any] = field(default_factory=dict)
    chain: GroupChain = field(default_factory=lambda: GroupChain(GID))
    group_answer: str = "ok"  # "ok" | "malformed" | "gone"
    on_sync: list[dict[str, Any]] = field(default_factory=list)
    stale_once_to: dict[str, Any] | None = None  # the group after a concurrent change
    stale_change: Callable[[], Any] | None = None  # what that change signs into the chain
    signers: dict[str, Signer] = field(default_factory=dict)
    page: int = 100  # chain entries per group answer
    tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # rewrites an answer
    frames: list[dict[str, Any]] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    group_reads: int = 0
    connections: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def uploader(self, uid: str) -> KeyUploader:
        return self.keys.uploader(uid, DEVICES[uid])

    # --- HTTP ----------------------------------------------------------------------

    async def count(self, _request: web.Request) -> web.Response:
        return web.json_response({"one_time_prekeys": 100})

    async def upload(self, _request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def bundles(self, request: web.Request) -> web.Response:
        return web.json_response(self.keys.answer(request.match_info["uid"]))

    async def change_group(self, request: web.Request) -> web.Response:
        """POST /v1/groups/{id}/changes as an honest service: the signed change goes on
        the chain with its author's certificate (only vouches are scripted here)."""
        change = (await request.json())["change"]
        body = json.loads(b64decode(change["body"]))
        author = self.signers[body["author"]]
        if (body["seq"], body["prev"]) != (self.chain.seq + 1, _b64(self.chain.head)):
            answer = {"error": {"code": "group_changed", "message": "stale"}}
            return web.json_response(answer, status=409)
        self.chain.entries.append(
            {**change, "seq": self.chain.seq + 1, "certificate": author.certificate()}
        )
        self.chain.head = chain_hash(b64decode(change["body"]))
        if json.loads(b64decode(change["body"]))["kind"] == "leave":
            return web.Response(status=204)
        return web.json_response(self.chain.answer(self.group, self.chain.seq))

    async def get_group(self, request: web.Request) -> web.Response:
        self.group_reads += 1
        self.changed.set()
        if self.group_answer == "gone" or request.match_info["gid"] != GID:
            return web.json_response({"error": {"code": "not_found", "message": "no"}}, status=404)
        if self.group_answer == "malformed":
            return web.json_response({"group_id": GID, "version": "two", "members": 7})
        after = int(request.query.get("changes_after", "0"))
        answer = self.chain.answer(self.group, after, self.page)
        return web.json_response(self.tamper(answer) if self.tamper else answer)

    # --- WebSocket -------------------------------------------------------------------

    async def ws(self, conn: ServerConnection) -> None:
        self.connections += 1
        async for text in conn:
            frame = json.loads(text)
            self.frames.append(frame)
            self.changed.set()
            if frame["action"] == "sync":
                for event in self.on_sync:
                    await conn.send(json.dumps(event))
                await conn.send(json.dumps({"event": "synced", "more": False, "cursor": None}))
            elif frame["action"] == "ack":
                self.acked.update(frame["ids"])
            elif frame["action"] == "send":
                await conn.send(json.dumps(self.answer(frame)))

    def answer(self, frame: dict[str, Any]) -> dict[str, Any]:
        if frame["to"].startswith("g:") and self.stale_once_to is not None:
            self.group, self.stale_once_to = self.stale_once_to, None
            if self.stale_change is not None:
                self.stale_change()
            return {
                "event": "error",
                "ref": frame["id"],
                "code": "stale_group",
                "message": "the group changed",
                "version": self.group["version"],
            }
        return {"event": "sent", "id": frame["id"], "ts": 1_700_000_000_000 + len(self.frames)}

    def sends(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["action"] == "send"]


def group_view(version: int, *members: str) -> dict[str, Any]:
    return {
        "group_id": GID,
        "name": "Climbing",
        "version": version,
        "members": list(members),
        "admins": [members[0]],
        "created_by": members[0],
        "created_at": 1,
    }


async def member(tmp_path: Path, service: Service, uid: str) -> Engine:
    store = Store.open(tmp_path / uid[:4], keyring=None, allow_plaintext=True)
    store.accounts.save(Account(uid, DEVICES[uid], "+1555" + uid[:4]), IdentityKeyPair.generate())
    await publish_initial_keys(service.uploader(uid), store, 0.0)

    async def no_fetch(_uid: str) -> KeyBundles:
        return KeyBundles([], None)

    return Engine(store, no_fetch)


async def alice_profile(home: Path, service: Service) -> Signer:
    """Alice's profile on disk; her device, to sign group changes as she would."""
    store = Store.open(home / "profiles" / "alice", keyring=None, allow_plaintext=True)
    identity = IdentityKeyPair.generate()
    store.accounts.save(Account(ALICE, DEVICES[ALICE], "+15550000001"), identity)
    store.accounts.save_tokens(Tokens("access", "refresh", 10**12))
    await publish_initial_keys(service.uploader(ALICE), store, 0.0)
    store.close()
    return Signer(ALICE, DEVICES[ALICE], identity)


@pytest.fixture
async def service() -> Service:
    return Service()


@pytest.fixture
async def endpoints(service: Service) -> AsyncIterator[Endpoints]:
    app = web.Application()
    app.router.add_get("/v1/keys/count", service.count)
    app.router.add_put("/v1/keys", service.upload)
    app.router.add_get("/v1/keys/{uid}", service.bundles)
    app.router.add_get("/v1/groups/{gid}", service.get_group)
    app.router.add_post("/v1/groups/{gid}/changes", service.change_group)
    async with serve_http(app) as http_url, serve(service.ws, "127.0.0.1", 0) as ws:
        ws_port = next(iter(ws.sockets)).getsockname()[1]
        yield Endpoints(http_url=http_url, ws_url=f"ws://127.0.0.1:{ws_port}/local")


async def until(service: Service, condition: Any) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            service.changed.clear()
            await service.changed.wait()


def envelope(frame: dict[str, Any], to: str, n: int) -> IncomingMessage:
    body = frame["body"] if "body" in frame else frame["payloads"][DEVICES[to]]
    return IncomingMessage(
        f"s{n}", frame["id"], ALICE, DEVICES[ALICE], body, 1, GID if "body" in frame else None
    )


async def test_a_stale_group_send_is_caught_up_with_and_resent_under_its_client_id(
    tmp_path: Path, service: Service, endpoints: Endpoints
) -> None:
    bob, carol = await member(tmp_path, service, BOB), await member(tmp_path, service, CAROL)
    alice_device = await alice_profile(tmp_path, service)
    service.group = group_view(1, ALICE, BOB)
    service.chain.sign(alice_device, "create", (BOB,))
    # Carol joins between Alice reading the group and her message reaching the service
    service.stale_once_to = group_view(2, ALICE, BOB, CAROL)
    service.stale_change = lambda: service.chain.sign(alice_device, "add", (CAROL,))

    async with Client("alice", endpoints=endpoints, home=tmp_path, keyring=None) as alice:
        events = alice.events()
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        alice.store.groups.save(Group(GID, "Climbing", 1, (ALICE, BOB), (ALICE,)), 0)
        message = await alice.send("Climbing", "Saturday?")
        async with asyncio.timeout(WAIT_S):
            await alice.wait_outbox_empty()
        stored = alice.store.messages.get(ALICE, message.client_id)
        assert stored is not None
        assert stored.state is MessageState.SENT
        # read before the first key went out, and again when the service said stale
        updates = [e for e in events.drain() if isinstance(e, GroupUpdated)]
        assert [u.group.version for u in updates] == [1, 2]
        assert updates[-1].added == (CAROL,)

    sends = service.sends()
    to_group = [f for f in sends if f["to"] == f"g:{GID}"]
    assert [f["id"] for f in to_group] == [message.client_id] * 2  # the same client id
    assert [f["version"] for f in to_group] == [1, 2]
    assert to_group[0]["body"] != to_group[1]["body"]  # a new key, a new ciphertext
    # every sender key went out before the message that needs it
    order = [f["to"] for f in sends]
    assert order.index(CAROL) < sends.index(to_group[1])
    assert order.index(BOB) < sends.index(to_group[0])

    # Bob and Carol open what the service stored (the second send) with their keys
    for engine, uid in ((bob, BOB), (carol, CAROL)):
        n = 0
        for frame in sends:
            if frame["to"] == uid:
                n += 1
                assert engine.receive(envelope(frame, uid, n)).stored
        shown = engine.receive(envelope(to_group[1], uid, 99)).events
        assert [e.message.text for e in shown if isinstance(e, MessageReceived)] == ["Saturday?"]
    # the first ciphertext, under the key made for version 1, never reached Carol's keys
    assert carol.receive(envelope(to_group[0], CAROL, 100)).events == []


async def test_members_no_admin_signed_in_get_no_sender_key_until_an_admin_vouches(
    tmp_path: Path, service: Service, endpoints: Endpoints
) -> None:
    engines = {uid: await member(tmp_path, service, uid) for uid in (BOB, CAROL, DAVE, ERIN)}
    alice_device = await alice_profile(tmp_path, service)
    service.signers[ALICE] = alice_device
    bob_device = Signer(BOB, DEVICES[BOB])
    service.chain.sign(alice_device, "create", (BOB,))
    # three ways a service might slip someone in: a change Alice's device did not sign,
    # an add by a member who is not an admin, and no change at all
    service.chain.sign(alice_device, "add", (CAROL,), signed_by=Signer(ALICE, DEVICES[ALICE]))
    service.chain.sign(bob_device, "add", (DAVE,))
    service.group = group_view(4, ALICE, BOB, CAROL, DAVE, ERIN)

    async with Client("alice", endpoints=endpoints, home=tmp_path, keyring=None) as alice:
        events = alice.events()
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        first = await alice.send(await alice.refresh_group(GID), "who is here?")
        warning = await asyncio.wait_for(_next(events, GroupMembersUnverified), WAIT_S)
        assert warning.user_ids == (CAROL, DAVE, ERIN)
        assert alice.group(GID).unverified == (CAROL, DAVE, ERIN)
        async with asyncio.timeout(WAIT_S):
            await alice.wait_outbox_empty()
        keyed = {f["to"] for f in service.sends() if not f["to"].startswith("g:")}
        assert keyed == {BOB}

        # she vouches only for the members she checked: the service lists one more
        with pytest.raises(ParleyClientError, match="not the ones you checked"):
            await alice.vouch_group(GID, [BOB, CAROL, DAVE], [])
        # nor if the service lists an admin she did not see as one
        with pytest.raises(ParleyClientError, match="not the ones you checked"):
            await alice.vouch_group(GID, [BOB, CAROL, DAVE, ERIN], [BOB])
        assert service.chain.seq == 3  # nothing was signed
        # Alice knows them: she vouches, and her next message's key reaches them too
        vouched = await alice.vouch_group(GID, [BOB, CAROL, DAVE, ERIN], [])
        assert vouched.unverified == ()
        second = await alice.send(vouched, "welcome")
        async with asyncio.timeout(WAIT_S):
            await alice.wait_outbox_empty()
    vouch = json.loads(b64decode(service.chain.entries[-1]["body"]))
    assert (vouch["kind"], vouch["seq"], vouch["members"]) == (
        "vouch",
        4,
        [ALICE, BOB, CAROL, DAVE, ERIN],
    )
    sends = service.sends()
    keyed = [f["to"] for f in sends if not f["to"].startswith("g:")]
    assert sorted(keyed) == [BOB, CAROL, DAVE, ERIN]
    to_group = {f["id"]: f for f in sends if f["to"] == f"g:{GID}"}
    for uid, engine in engines.items():
        for n, frame in enumerate(f for f in sends if f["to"] == uid):
            assert engine.receive(envelope(frame, uid, n)).stored
        opened = [
            e.message.text
            for cid in (first.client_id, second.client_id)
            for e in engine.receive(envelope(to_group[cid], uid, 50 + len(cid))).events
            if isinstance(e, MessageReceived)
        ]
        assert opened == (["who is here?", "welcome"] if uid == BOB else ["welcome"])


@pytest.mark.parametrize("moved", [True, False])
async def test_a_change_under_another_account_identity_than_pinned_counts_only_if_it_is_theirs(
    tmp_path: Path, service: Service, endpoints: Endpoints, moved: bool
) -> None:
    """Bob, an admin, adds Dave, under an account identity Alice has not pinned for him.
    If Bob moved to a new phone (the service's list for him says so, verified as any
    list), Alice's device learns it and trusts the change; if the service made the
    signature up, his list still names the identity Alice pinned, and Dave is not let in."""
    await member(tmp_path, service, BOB)
    alice_device = await alice_profile(tmp_path, service)
    bob_now = IdentityKeyPair.generate()  # Bob's account identity on the service
    service.keys.enroll(BOB, DEVICES[BOB], bob_now)
    pinned = IdentityKeyPair.generate() if moved else bob_now
    signs_with = bob_now if moved else IdentityKeyPair.generate()
    store = Store.open(tmp_path / "profiles" / "alice", keyring=None, allow_plaintext=True)
    old = Signer(BOB, DEVICES[BOB], pinned).certificate()
    store.device_lists.save(
        BOB, pinned.public_key, 1, b64decode(old["body"]), b64decode(old["signature"])
    )
    store.close()
    service.chain.sign(alice_device, "create", (BOB,))
    service.chain.sign(alice_device, "promote", (BOB,))
    service.chain.sign(Signer(BOB, DEVICES[BOB], signs_with), "add", (DAVE,))
    service.group = group_view(3, ALICE, BOB, DAVE) | {"admins": [ALICE, BOB]}

    async with Client("alice", endpoints=endpoints, home=tmp_path, keyring=None) as alice:
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        group = await alice.refresh_group(GID)
        assert group.unverified == (() if moved else (DAVE,))
        listed = alice.store.device_lists.get(BOB)
        assert listed is not None
        assert listed.account_identity == bob_now.public_key  # learned, or kept


async def test_a_chain_read_in_pages_from_a_vouch_verifies_its_members(
    tmp_path: Path, service: Service, endpoints: Endpoints
) -> None:
    alice_device = await alice_profile(tmp_path, service)
    service.chain.start_at(8)  # a group from before chains
    service.chain.sign(alice_device, "vouch", (ALICE, BOB), (ALICE,))
    for uid in (CAROL, DAVE, ERIN):
        service.chain.sign(alice_device, "add", (uid,))
    service.group = group_view(4, ALICE, BOB, CAROL, DAVE, ERIN)
    service.page = 2
    async with Client("alice", endpoints=endpoints, home=tmp_path, keyring=None) as alice:
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        group = await alice.refresh_group(GID)
        assert group.unverified == ()
        assert group.head == 11
        assert service.group_reads == 2  # changes 8-9, 10-11


def _rolled_back(answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "head": 0, "changes": [], "more": False}


def _other_group(answer: dict[str, Any]) -> dict[str, Any]:
    other = GroupChain(STRANGER_GID)
    mallory = Signer(ERIN, DEVICES[ERIN])
    other.sign(mallory, "create", (BOB, DAVE))
    return {**answer, "head": 1, "changes": other.entries, "more": False}


def _forked(answer: dict[str, Any]) -> dict[str, Any]:
    fork = GroupChain(GID)  # another history than the one Alice verified
    mallory = Signer(ALICE, DEVICES[ALICE])
    fork.sign(mallory, "create", (BOB,))
    fork.sign(mallory, "add", (CAROL,))
    return {**answer, "head": 2, "changes": fork.entries[1:], "more": False}


@pytest.mark.parametrize("tamper", [_rolled_back, _other_group, _forked])
async def test_a_chain_that_does_not_follow_on_leaves_every_member_unverified(
    tmp_path: Path, service: Service, endpoints: Endpoints, tamper: Any
) -> None:
    alice_device = await alice_profile(tmp_path, service)
    service.chain.sign(alice_device, "create", (BOB, DAVE))
    service.group = group_view(1, ALICE, BOB, DAVE)
    async with Client("alice", endpoints=endpoints, home=tmp_path, keyring=None) as alice:
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        first = await alice.refresh_group(GID)
        assert first.unverified == ()
        service.tamper = tamper
        service.group = group_view(2, ALICE, BOB, DAVE, CAROL)
        if tamper is _other_group:
            # a device that never verified this group is shown another group's start
            alice.store.groups._db.execute("DELETE FROM group_chains")
        again = await alice.refresh_group(GID)
        assert again.unverified == (BOB, DAVE, CAROL)
        # what was verified is kept to continue from, and a vouch cannot be signed
        # over a chain this device cannot follow
        kept = alice.store.groups.chain(GID)
        assert (kept is not None) == (tamper is not _other_group)
        with pytest.raises(ParleyClientError):
            await alice.vouch_group(GID, [BOB, DAVE, CAROL], [])
        assert alice.store.groups.chain(STRANGER_GID) is None


def _b64(raw: bytes) -> str:
    return b64(raw) if raw else ""


def _garbled(answer: dict[str, Any]) -> dict[str, Any]:
    """The group's first change served garbled (the rest as they are)."""
    bad = [{**e, "body": b64(b"{not json")} if e["seq"] == 1 else e for e in answer["changes"]]
    return {**answer, "changes": bad}


async def test_a_member_can_leave_a_group_whose_chain_it_cannot_read(
    tmp_path: Path, service: Service, endpoints: Endpoints
) -> None:
    alice_device = await alice_profile(tmp_path, service)
    service.signers[ALICE] = alice_device
    bob = Signer(BOB, DEVICES[BOB])
    service.chain.sign(bob, "create", (ALICE,))
    service.chain.sign(bob, "add", (CAROL,))
    service.group = group_view(2, BOB, ALICE, CAROL)
    service.tamper = _garbled
    async with Client("alice", endpoints=endpoints, home=tmp_path, keyring=None) as alice:
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        group = await alice.refresh_group(GID)
        assert group.unverified == (BOB, CAROL)  # nothing of a garbled chain is trusted
        left = await alice.leave(GID)
        assert not left.active
    leave = json.loads(b64decode(service.chain.entries[-1]["body"]))
    assert (leave["kind"], leave["seq"], leave["author"]) == ("leave", 3, ALICE)


async def test_whatever_a_hostile_service_says_about_groups_the_client_stays_up(
    tmp_path: Path, service: Service, endpoints: Endpoints, caplog: pytest.LogCaptureFixture
) -> None:
    await alice_profile(tmp_path, service)
    junk_key = b64(bytes([1, 3]) + bytes(200))

    def event(server_id: str, **fields: Any) -> dict[str, Any]:
        base = {
            "event": "message",
            "id": server_id,
            "client_id": f"c-{server_id}",
            "from": BOB,
            "from_device": DEVICES[BOB],
            "body": junk_key,
            "ts": 1,
        }
        return base | fields

    service.on_sync = [
        event("g1", group="not a group"),
        event("g2", group=GID, body="***"),
        event("g3", group=GID, body=b64(b"\x01")),
        event("g4", group=STRANGER_GID),  # a group nobody told us about: held, then read
        event("g5", group=GID, **{"from": ALICE, "from_device": "a2" * 8}),
    ]
    service.group_answer = "malformed"
    service.stale_once_to = group_view(2, ALICE, BOB)
    with caplog.at_level(logging.WARNING, logger="parley"):
        async with Client("alice", endpoints=endpoints, home=tmp_path, keyring=None) as alice:
            events = alice.events()
            await until(service, lambda: {"g1", "g2", "g3", "g4", "g5"} <= service.acked)
            await asyncio.wait_for(alice.wait_synced(), WAIT_S)
            await asyncio.wait_for(alice.wait_groups_read(), WAIT_S)
            # held for a key: only what may still open (g5, from another device of
            # Alice's, waits for that device's key like any member's); the stranger
            # group's read answered 404, so it is not ours and nothing of it is kept
            held = [h.client_id for h in alice.store.sender_keys.held()]
            assert held == ["c-g3", "c-g5"]
            stranger = alice.store.groups.get(STRANGER_GID)
            assert stranger is not None
            assert not stranger.active

            # a send the service calls stale, and a group it then answers with junk
            alice.store.groups.save(Group(GID, "Climbing", 1, (ALICE, BOB), (ALICE,)), 0)
            # Alice's key went to Bob already: the send goes out as she last saw the group
            given = OwnSenderKey(SenderKey.generate(), 1, frozenset({BOB}))
            alice.store.sender_keys.save_own(GID, given, 0)
            message = await alice.send("Climbing", "anyone?")
            failed = await asyncio.wait_for(_next(events, SendFailed), WAIT_S)
            assert failed.message.client_id == message.client_id
            assert failed.code == "stale_group"
            assert alice.connected
            assert alice.history("Climbing")[-1].state is MessageState.FAILED
            assert alice.store.outbox.items() == []

    assert service.connections == 1  # never dropped
    assert "bad ts or group" in caplog.text
    assert "body is not base64" in caplog.text


async def _next(stream: Any, kind: type[Any]) -> Any:
    async for item in stream:
        if isinstance(item, kind):
            return item
    raise AssertionError("the stream ended")
