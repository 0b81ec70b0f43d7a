"""Fuzzing every WebSocket action through its handler, in-process (moto, each
function's exact environment, a loopback @connections endpoint).

For every frame hypothesis makes, from any of three connected devices:
- the handler answers 200 and never an internal or dependency error;
- a refused frame changes nothing at all (tables, texts, objects);
- an `ack` with unknown ids deletes only the caller's own envelopes it named and
  adds only receipts; `sync` and `typing` never change anything.
The number of frames run per entry point is printed with the run's figures.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import groups
from parley_server.logic.ports import Caller
from parley_server.models.frames import ACTIONS, Position, encode_cursor
from parley_server.store.groups import GroupsStore
from parley_server.store.users import KnownUsers, UsersStore
from tests.conftest import FakeAws
from tests.device_lists import device_key
from tests.group_changes import Signer
from tests.integration.ws_harness import Device, Harness, harness
from tests.reliability.figures import FIGURES
from tests.reliability.fuzzing import (
    SIZES,
    b64_values,
    client_ids,
    device_ids,
    examples,
    fuzz_settings,
    json_values,
    snapshot,
    user_ids,
)

CI, SOAK = 200, 2000  # frames per route
ROUTES = {"send": "WsSend", "ack": "WsAck", "receipt": "WsReceipt", "sync": "WsSync"}
ROUTES |= {"typing": "WsTyping"}
FAULTS = {"internal_error", "service_unavailable"}


@dataclass
class World:
    ws: Harness
    aws: FakeAws
    alice: Device
    alice_laptop: Device
    bob: Device
    # server ids that waited in Bob's mailbox at the start (fixed: strategies draw from it)
    pending: tuple[str, ...]
    group_id: str  # Alice's and Bob's

    @property
    def devices(self) -> list[Device]:
        return [self.alice, self.alice_laptop, self.bob]


@pytest.fixture
def world(aws: FakeAws, function_env: Any) -> Iterator[World]:
    # a fuzzer sends far faster than a person: the per-device send rate would
    # refuse nearly everything and hide the logic behind it
    aws.settings[Setting.LIMITS] = json.dumps({"send_rate_per_s": 1_000_000})
    with harness(aws, function_env) as ws:
        alice, laptop = (ws.connect(d) for d in ws.user(devices=2))
        bob = ws.connect(ws.user()[0])
        for n in range(5):
            ws.send(alice, bob.user_id, {bob.device_id: b"seed"}, f"seed{n}")
        pending = tuple(e["id"] for e in ws.events(bob, "message"))
        signer = Signer(alice.user_id, alice.device_id, device_key(alice.user_id, alice.device_id))
        group = groups.create_group(
            Caller(alice.user_id, alice.device_id),
            signer.create(uuid.uuid4().hex, "fuzz", [bob.user_id]),
            now=time.time(),
            limits=Limits(),
            groups=GroupsStore(aws.client("dynamodb"), aws.settings[Setting.GROUPS_TABLE]),
            users=KnownUsers(aws.client("dynamodb"), aws.settings[Setting.USERS_TABLE]),
            device_lists=UsersStore(aws.client("dynamodb"), aws.settings[Setting.USERS_TABLE]),
        )
        yield World(ws, aws, alice, laptop, bob, pending, group.group_id)


def _frames(world: World, route: str) -> st.SearchStrategy[Any]:
    """Frames for one route, mostly with its action's own fields in some shape."""
    people = (world.alice.user_id, world.bob.user_id)
    devices = (world.alice.device_id, world.alice_laptop.device_id, world.bob.device_id)
    to = st.one_of(
        user_ids(*people), user_ids(*people).map(lambda v: f"g:{v}" if isinstance(v, str) else v)
    )
    forged = st.builds(
        lambda kind, uid, did, key: f"{kind}#{uid}#{did}#{key}",
        st.sampled_from("mr"),
        st.sampled_from(people),
        st.sampled_from(devices),
        st.text(alphabet="abcdefgh0123456789", min_size=1, max_size=8),
    )
    server_ids = st.one_of(st.sampled_from(world.pending), forged, st.text(max_size=80))
    cursors = st.one_of(
        st.builds(
            lambda ord_, sid: encode_cursor(Position(ord_, sid)),
            st.from_regex(r"[0-9]{17}#[0-9a-f]{8}", fullmatch=True),
            forged,
        ),
        st.text(max_size=60),
        json_values,
    )

    def frame(action: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.fixed_dictionaries(
            {"action": st.just(action)},
            optional={**fields, "from": user_ids(*people), "extra": json_values},
        )

    valid_ids = st.text(alphabet="abcdefXYZ0123456789_-", min_size=1, max_size=64)
    well_formed_sends = st.one_of(
        st.fixed_dictionaries(
            {
                "action": st.just("send"),
                "id": valid_ids,
                "to": st.just(world.bob.user_id),
                "payloads": st.fixed_dictionaries({world.bob.device_id: b64_values()}),
            }
        ),
        st.fixed_dictionaries(
            {
                "action": st.just("send"),
                "id": valid_ids,
                "to": st.just(world.alice.user_id),
                "payloads": st.fixed_dictionaries(
                    {
                        world.alice.device_id: b64_values(),
                        world.alice_laptop.device_id: b64_values(),
                    }
                ),
            }
        ),
    )
    by_route = {
        "send": st.one_of(
            well_formed_sends,
            frame(
                "send",
                id=client_ids,
                to=to,
                payloads=st.one_of(
                    st.dictionaries(device_ids(*devices, keys=True), b64_values(), max_size=3),
                    json_values,
                ),
                body=b64_values(),
            ),
            # right id and recipient, so the payloads themselves get parsed
            st.fixed_dictionaries(
                {
                    "action": st.just("send"),
                    "id": valid_ids,
                    "to": st.sampled_from(people),
                    "payloads": st.one_of(
                        json_values,
                        st.dictionaries(device_ids(*devices, keys=True), b64_values(), max_size=3),
                    ),
                }
            ),
            frame(
                "send",
                id=valid_ids,
                to=to,
                payloads=st.one_of(
                    st.dictionaries(device_ids(*devices, keys=True), b64_values(), max_size=3),
                    json_values,
                ),
                body=b64_values(),
            ),
        ),
        "ack": st.one_of(
            st.fixed_dictionaries(
                {"action": st.just("ack"), "ids": st.lists(server_ids, max_size=4)}
            ),
            frame("ack", ids=st.one_of(st.lists(server_ids, max_size=4), json_values)),
        ),
        "receipt": st.one_of(
            st.fixed_dictionaries(
                {
                    "action": st.just("receipt"),
                    "to": st.sampled_from(people),
                    "status": st.just("read"),
                    "ids": st.lists(valid_ids, min_size=1, max_size=4),
                }
            ),
            frame(
                "receipt",
                to=user_ids(*people),
                status=st.one_of(st.sampled_from(["read", "delivered", "seen"]), json_values),
                ids=st.one_of(st.lists(client_ids, max_size=4), json_values),
            ),
        ),
        "sync": frame("sync", after=cursors),
        "typing": frame(
            "typing",
            to=st.one_of(to, st.just(f"g:{world.group_id}")),
            state=st.one_of(st.sampled_from(["on", "off"]), json_values),
        ),
        "$default": st.one_of(
            st.fixed_dictionaries({"action": st.one_of(st.text(max_size=12), json_values)}),
            json_values,  # any JSON at all, objects or not
            st.text(max_size=60),  # not JSON
        ),
    }
    return by_route[route]


def _ack_of_pending(world: World, data: st.DataObject, frame: Any) -> dict[str, Any]:
    """An ack by Bob naming some of what waits in his mailbox (refilled when empty),
    plus whatever ids the drawn frame had."""
    waiting = [item["sk"]["S"] for item in world.ws.mailbox_items(world.bob)]
    if not waiting:
        client_id = f"refill-{uuid.uuid4().hex}"
        world.ws.send(world.alice, world.bob.user_id, {world.bob.device_id: b"x"}, client_id)
        waiting = [item["sk"]["S"] for item in world.ws.mailbox_items(world.bob)]
    # indexes, not sampled_from(waiting): a strategy must not depend on changing state
    picks = data.draw(st.lists(st.integers(0, 999), min_size=1, max_size=3), label="waiting")
    named = [waiting[i % len(waiting)] for i in picks]
    extra = frame.get("ids") if isinstance(frame, dict) else None
    return {"action": "ack", "ids": named + (extra if isinstance(extra, list) else [])}


def _route(body: str) -> str:
    try:
        action = json.loads(body).get("action")
    except (ValueError, AttributeError, RecursionError):
        action = None
    return action if isinstance(action, str) and action in ACTIONS else "$default"


def _mailbox_changes(before: str, after: str) -> tuple[set[str], set[str]]:
    """(items gone, items added) of the mailbox table between two snapshots."""
    table = Setting.MAILBOX_TABLE.value
    old = set(json.loads(before)["tables"][table])
    new = set(json.loads(after)["tables"][table])
    return old - new, new - old


def _check_ack(device: Device, frame: Any, before: str, after: str) -> None:
    """An ack that named unknown ids: only the caller's named envelopes went, only receipts came."""
    named = (
        set(frame["ids"])
        if isinstance(frame, dict) and isinstance(frame.get("ids"), list)
        else set()
    )
    gone, added = _mailbox_changes(before, after)
    own = f"{device.user_id}#{device.device_id}"
    for item in map(json.loads, gone):
        assert item["device"]["S"] == own, item
        assert item["sk"]["S"] in named, item
    for item in map(json.loads, added):
        assert item["sk"]["S"].startswith("r#"), item
    other = {k: v for k, v in json.loads(before).items() if k != "tables"}
    assert other == {k: v for k, v in json.loads(after).items() if k != "tables"}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", [*ROUTES, "$default"])
def test_a_websocket_route_survives_fuzzing_and_its_refusals_change_nothing(
    world: World, route: str, size: str
) -> None:
    ws = world.ws
    runs = {"accepted": 0, "refused": 0}
    # built once: a strategy built anew at each example was validated anew each time
    frames_of_route = _frames(world, route)

    @fuzz_settings(examples(size, CI, SOAK), size)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        nonlocal runs
        device = data.draw(st.sampled_from(world.devices), label="from")
        frame = data.draw(frames_of_route, label="frame")
        if route == "ack" and data.draw(st.booleans(), label="ack what waits"):
            device, frame = world.bob, _ack_of_pending(world, data, frame)
        body = frame if isinstance(frame, str) else json.dumps(frame)
        routed = _route(body)  # a $default frame may name a real action by chance
        seen = len(ws.events(device))
        before = snapshot(world.aws)

        answer = ws.frame(device, body)

        after = snapshot(world.aws)
        assert answer["statusCode"] == 200, answer
        events = ws.events(device)[seen:]
        if "body" in answer:
            events.append(json.loads(answer["body"]))
        errors = [e for e in events if e.get("event") == "error"]
        assert not [e for e in errors if e["code"] in FAULTS], errors
        runs["refused" if errors else "accepted"] += 1
        if routed in ("sync", "typing"):
            assert after == before
        elif routed == "ack" and [e["code"] for e in errors] == ["unknown_ids"]:
            _check_ack(device, frame, before, after)
        elif errors:
            assert after == before, errors

    run()
    function = ROUTES.get(route, "WsDefault")
    for outcome, count in runs.items():
        FIGURES.record("fuzz frames run in-process (hypothesis)", f"{function} {outcome}", count)
