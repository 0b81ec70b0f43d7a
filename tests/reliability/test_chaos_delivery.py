"""Chaos delivery on a local stack with faults injected into its handlers.

At least 20 devices exchange at least 2,000 messages, one in twenty of them to a
group of five (more under `make soak`: one in ten), while the stack throttles 2% of the
handlers' DynamoDB calls and finds 1% of its posts to connections gone (closing
them), and the devices drop their own connections and are restarted at random.
Then, calm. The promises:

- every message the server accepted (`sent`) is shown exactly once to each of
  its recipients (every other member, for a group), in the sender's order;
- every sender sees a delivered tick from each recipient for every one of them;
- no mailbox holds anything afterwards.

The figures (messages, faults, drops, restarts, lost, duplicated, reordered)
are printed with the run's figures.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.group_changes import Signer
from tests.reliability.chaos import ChaosPlan, Device, run_chaos, settle
from tests.reliability.figures import FIGURES
from tests.reliability.stack import Account, Stack, http_from, running_stack, sign_up

HANDLERS = [
    "GroupFanout",
    "WsAuthorizer",
    "WsConnect",
    "WsDisconnect",
    "WsDefault",
    "WsSend",
    "WsAck",
    "WsReceipt",
    "WsSync",
    "WsTyping",
]
FAULTS = {"seed": 11, "throttle": 0.02, "gone": 0.01, "functions": HANDLERS}


@pytest.fixture(scope="module")
def faulty_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("chaos-stack"), faults=FAULTS) as stack:
        yield stack


def _mailbox_items(stack: Stack, devices: list[Device]) -> int:
    return sum(len(stack.mailbox(d.account.user_id, d.account.device_id)) for d in devices)


def _leftovers(stack: Stack, devices: list[Device]) -> str:
    """What is still waiting, where, and what its device's connection looked like."""
    connections = stack.moto("dynamodb")
    (table,) = [t for t in connections.list_tables()["TableNames"] if t.endswith("-connections")]
    lines = []
    for device in devices:
        items = stack.mailbox(device.account.user_id, device.account.device_id)
        if not items:
            continue
        recorded = connections.query(
            TableName=table,
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": device.account.user_id}},
        )["Items"]
        lines.append(
            f"{device.account.user_id}: connected={device.connected} "
            f"recorded={[i['connection_id']['S'] for i in recorded]} "
            f"synced={device.synced_at is not None}"
        )
        lines += [f"  {i['sk']['S']} ord={i['ord']['S']}" for i in items]
    return "\n".join(lines)


async def _groups(stack: Stack, accounts: list[Account], size: int) -> dict[str, list[Account]]:
    """Groups of `size` people, each made by its first member over the HTTP API."""
    groups: dict[str, list[Account]] = {}
    for start in range(0, len(accounts) - size + 1, size):
        members = accounts[start : start + size]
        owner = members[0]
        create = Signer(owner.user_id, owner.device_id, owner.identity).wire(
            "create",
            uuid.uuid4().hex,
            seq=1,
            prev=b"",
            name=f"chaos {start}",
            members=sorted(m.user_id for m in members[1:]),
        )
        async with (
            http_from() as http,
            http.post(
                stack.http_url + "/v1/groups", json={"change": create}, headers=owner.auth
            ) as answer,
        ):
            assert answer.status in (200, 201), await answer.text()
            groups[(await answer.json())["group_id"]] = members
    return groups


async def _chaos(stack: Stack, people: int, plan: ChaosPlan, name: str) -> None:
    accounts: list[Account] = await asyncio.gather(*(sign_up(stack) for _ in range(people)))
    groups = await _groups(stack, accounts, size=5)
    before = stack.faults()

    ledger, devices = await run_chaos(stack, accounts, plan, groups)
    await settle(devices, lambda: _mailbox_items(stack, devices) == 0, 60.0)
    left = await asyncio.to_thread(_mailbox_items, stack, devices)
    stuck = await asyncio.to_thread(_leftovers, stack, devices) if left else ""
    for device in devices:
        await device.stop()

    verdict = ledger.verdict()
    faults = {k: v - before.get(k, 0) for k, v in stack.faults().items() if ":" not in k}
    for key, value in {**verdict, **faults, **ledger.events, "left in mailboxes": left}.items():
        FIGURES.record(name, key, value)
    assert verdict["messages sent"] == plan.messages
    assert verdict["of which to groups"] > 0
    assert verdict["accepted (sent)"] == plan.messages
    assert verdict["lost"] == 0, stuck
    assert verdict["shown twice"] == 0
    assert verdict["shown out of order"] == 0
    assert verdict["without a delivered tick"] == 0, stuck
    assert verdict["refused for good"] == 0
    assert left == 0, stuck
    assert faults.get("throttle", 0) > 0
    assert faults.get("gone", 0) > 0
    assert ledger.events["connections dropped"] > 0
    assert ledger.events["apps restarted"] > 0


async def test_chaos_every_accepted_message_is_shown_once_in_order_and_ticked(
    faulty_stack: Stack,
) -> None:
    plan = ChaosPlan(
        messages=1200, accepted_per_event=4.0, restart_share=0.3, deadline_s=600.0, group_every=20
    )
    await _chaos(faulty_stack, 20, plan, "chaos delivery (CI size)")


@pytest.mark.soak
async def test_chaos_at_soak_size(faulty_stack: Stack) -> None:
    plan = ChaosPlan(
        messages=20_000,
        accepted_per_event=4.0,
        restart_share=0.3,
        deadline_s=3600.0,
        group_every=10,
        seed=23,
        progress_every_s=30.0,
    )
    await _chaos(faulty_stack, 50, plan, "chaos delivery (soak size)")
