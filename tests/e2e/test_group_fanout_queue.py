"""A message to a group larger than the inline limit goes through the fan-out queue:
WsSend enqueues slices, the local stack's SQS event source invokes GroupFanout, and
members online and offline get it, as on AWS."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import aiohttp

from parley_server.logic.group_fanout import INLINE_MEMBERS
from tests.e2e.conftest import LocalStack
from tests.e2e.support import WAIT_S, Device, identity_of, next_event, online, sign_in, sync
from tests.group_changes import Signer


async def test_a_large_group_message_reaches_online_and_offline_members_through_the_queue(
    local_stack: LocalStack,
) -> None:
    size = INLINE_MEMBERS + 2  # just past the inline limit: the queued path
    async with aiohttp.ClientSession() as http:
        people: list[Device] = [await sign_in(local_stack, http) for _ in range(size)]
        sender, present, absent = people[0], people[-1], people[-2]
        create = Signer(sender.user_id, sender.device_id, identity_of(sender)).wire(
            "create",
            uuid.uuid4().hex,
            seq=1,
            prev=b"",
            name="big",
            members=sorted(p.user_id for p in people[1:]),
        )
        async with http.post(
            local_stack.http_url + "/v1/groups",
            json={"change": create},
            headers={"Authorization": f"Bearer {sender.token}"},
        ) as r:
            assert r.status in (200, 201), await r.text()
            group = await r.json()
        assert len(group["members"]) == size

    body = base64.b64encode(b"sender-key ciphertext").decode()
    async with online(local_stack, present) as member, online(local_stack, sender) as ws:
        await ws.send(
            json.dumps(
                {
                    "action": "send",
                    "id": "big-1",
                    "to": f"g:{group['group_id']}",
                    "body": body,
                    "version": group["version"],
                }
            )
        )
        sent = await next_event(ws, "sent")
        assert sent["id"] == "big-1"
        got = await next_event(member, "message")
        assert (got["group"], got["from"], got["client_id"], got["body"]) == (
            group["group_id"],
            sender.user_id,
            "big-1",
            body,
        )

    # the offline member finds it on sync once the queued slice has been processed:
    # stored, and its job done (GroupFanout posts after it stores, so a device that
    # connects in between may also get the slice live: a copy, which clients drop)
    deadline = time.monotonic() + WAIT_S
    while not await asyncio.to_thread(_processed, local_stack, absent):
        assert time.monotonic() < deadline, "the queued slice was never processed"
        await asyncio.sleep(0.1)
    async with online(local_stack, absent) as late:
        pending = [e for e in await sync(late) if e["event"] == "message"]
        assert [(e["group"], e["client_id"]) for e in pending] == [(group["group_id"], "big-1")]


def _processed(stack: LocalStack, device: Device) -> bool:
    """The device's envelope is stored and no fan-out job is queued or in flight (the
    event source deletes a job once GroupFanout has returned)."""
    if not stack.mailbox(device.user_id, device.device_id):
        return False
    sqs = stack.moto("sqs")
    (url,) = [u for u in sqs.list_queues()["QueueUrls"] if u.endswith("-fanout.fifo")]
    counts = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(count) == 0 for count in counts.values())
