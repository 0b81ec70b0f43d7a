"""A whole `Client` against a hostile server: whatever arrives, it stays up,
keeps its store intact, acks what it drops, and still takes the good message."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from parley import Client, Endpoints, MessageReceived
from parley.crypto import IdentityKeyPair, Session
from parley.keys import publish_initial_keys
from parley.models import Account
from parley.store import Store, Tokens
from tests.unit.client.fakes import KeyServer, serve_http

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALICE, ALICE_DEV = "a" * 32, "a1" * 8
BOB, BOB_DEV = "b" * 32, "b1" * 8
CAROL, CAROL_DEV = "c" * 32, "c1" * 8


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def message(server_id: str, client_id: str, sender: str, device: str, body: str) -> str:
    return json.dumps(
        {
            "event": "message",
            "id": server_id,
            "client_id": client_id,
            "from": sender,
            "from_device": device,
            "body": body,
            "ts": 1_700_000_000_000,
        }
    )


@pytest.fixture
async def http_url() -> AsyncIterator[str]:
    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"one_time_prekeys": 100})

    app = web.Application()
    app.router.add_get("/v1/keys/count", count)
    async with serve_http(app) as url:
        yield url


async def _bobs_profile(home: Path) -> KeyServer:
    """Bob's profile under `home`, as signup leaves it; the keys it published."""
    store = Store.open(home / "profiles" / "bob", keyring=None, allow_plaintext=True)
    store.accounts.save(Account(BOB, BOB_DEV, "+15550000002"), IdentityKeyPair.generate())
    store.accounts.save_tokens(Tokens("access", "refresh", 10**12))
    published = KeyServer()
    await publish_initial_keys(published.uploader(BOB, BOB_DEV), store, 0.0)
    store.close()
    return published


async def test_the_client_holds_a_receipts_ack_as_long_as_it_is_told(
    tmp_path: Path, http_url: str
) -> None:
    await _bobs_profile(tmp_path)
    receipt = {
        "event": "receipt",
        "id": "r2",
        "from": ALICE,
        "from_device": ALICE_DEV,
        "status": "delivered",
        "ids": ["c9"],
        "ts": 1,
    }
    acked = asyncio.Event()

    async def server(ws: ServerConnection) -> None:
        async for text in ws:
            frame = json.loads(text)
            if frame["action"] == "sync":
                await ws.send(json.dumps(receipt))
                await ws.send(json.dumps({"event": "synced", "more": False, "cursor": None}))
            elif frame["action"] == "ack" and frame["ids"] == ["r2"]:
                acked.set()

    async with serve(server, "127.0.0.1", 0) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        endpoints = Endpoints(http_url=http_url, ws_url=f"ws://127.0.0.1:{port}/local")
        client = Client(
            "bob", endpoints=endpoints, home=tmp_path, keyring=None, receipt_ack_delay=0.3
        )
        async with client as bob:
            async with asyncio.timeout(10):
                await bob.wait_synced()
                # the SDK's own would hold it 300 s, this one 0.3 s; the connection stays
                await acked.wait()
            assert bob.protocol.next_deadline() is None  # nothing else is waiting


async def test_garbage_and_forgeries_are_dropped_and_acked_and_the_good_message_is_stored(
    tmp_path: Path, http_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path
    published = await _bobs_profile(home)

    # Alice writes to Bob (first contact); tampered copies of it go first
    alice = Session.initiate(IdentityKeyPair.generate(), published.bundle(BOB, BOB_DEV))
    first = b64(alice.encrypt(json.dumps({"v": 1, "kind": "text", "text": "hi Bob"}).encode()))
    raw_first = base64.b64decode(first)
    forged_header = bytearray(raw_first)
    forged_header[40] ^= 1
    wrong_version = bytes([0x7F]) + raw_first[1:]
    # Carol, whom Bob has no session with, sends an ordinary (non-prekey) message
    stray = bytes([1, 1]) + bytes(120)

    frames = [
        "not json at all",
        json.dumps({"event": "message", "id": "x"}),
        message("s1", "c1", ALICE, ALICE_DEV, "***not base64***"),
        message("s2", "c2", ALICE, ALICE_DEV, b64(wrong_version)),
        message("s3", "c3", ALICE, ALICE_DEV, b64(bytes(forged_header))),
        message("s4", "c4", CAROL, CAROL_DEV, b64(stray)),
        message("s5", "c5", ALICE, ALICE_DEV, first),
        json.dumps({"event": "receipt", "id": "r1", "from": "zz", "status": "read", "ids": []}),
        json.dumps({"event": "synced", "more": False, "cursor": None}),
    ]
    acked: list[str] = []
    connections = 0
    all_acked = asyncio.Event()

    async def hostile(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        async for text in ws:
            frame = json.loads(text)
            if frame["action"] == "sync":
                for out in frames:
                    await ws.send(out)
            elif frame["action"] == "ack":
                acked.extend(frame["ids"])
                if {"s1", "s2", "s3", "s4", "s5", "r1"} <= set(acked):
                    all_acked.set()

    async with serve(hostile, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        endpoints = Endpoints(http_url=http_url, ws_url=f"ws://127.0.0.1:{port}/local")
        with caplog.at_level(logging.WARNING, logger="parley"):
            async with Client("bob", endpoints=endpoints, home=home, keyring=None) as bob:
                events = bob.events()
                async with asyncio.timeout(10):
                    await all_acked.wait()
                    await bob.wait_synced()
                received = [e for e in events.drain() if isinstance(e, MessageReceived)]
                assert [r.message.text for r in received] == ["hi Bob"]
                assert [m.text for m in bob.history(ALICE)] == ["hi Bob"]
                assert bob.store.contacts.get(CAROL) is None  # nothing from the forgery stayed
                assert bob.connected

    assert connections == 1  # never dropped, never reconnected
    warnings = caplog.text
    for reason in ("not JSON", "body is not base64", "UnsupportedVersion", "unknown sender"):
        assert reason in warnings, reason
    # every envelope with an id is acked, so the server stops redelivering junk
    assert sorted(set(acked)) == ["r1", "s1", "s2", "s3", "s4", "s5", "x"]
