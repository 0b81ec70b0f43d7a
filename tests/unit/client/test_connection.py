"""Prekey upkeep on a live connection: a `prekeys_low` notice from the service runs
it at once, not after the rest of MAINTENANCE_INTERVAL_S."""

from __future__ import annotations

import asyncio
import json

from parley.connection import MAINTENANCE_INTERVAL_S, Connection
from parley.keys import Maintenance
from parley.protocol import PrekeysLow, Protocol


def test_the_protocol_hands_in_a_prekeys_low_notice() -> None:
    proto = Protocol()
    proto.receive_data(json.dumps({"event": "prekeys_low", "left": 3}))
    proto.receive_data(json.dumps({"event": "prekeys_low", "left": "many"}))
    assert proto.events_received() == [PrekeysLow(3), PrekeysLow(0)]


async def test_a_prekeys_low_notice_runs_upkeep_at_once() -> None:
    assert MAINTENANCE_INTERVAL_S >= 10
    live = Connection(Protocol(), emit=lambda _: None)
    runs: list[float] = []
    ran = asyncio.Event()

    async def maintain() -> Maintenance:
        runs.append(asyncio.get_running_loop().time())
        ran.set()
        return Maintenance(uploaded=0, rotated=False, dropped=0)

    live.synced.set()
    task = asyncio.create_task(live._maintenance(maintain))
    try:
        await asyncio.wait_for(ran.wait(), 1.0)
        ran.clear()
        # first messages used prekeys: upkeep waits for the rest of its interval
        live.maintenance_due.set()
        await asyncio.sleep(0.05)
        assert len(runs) == 1

        live.top_up_now()

        await asyncio.wait_for(ran.wait(), 1.0)
        assert len(runs) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
