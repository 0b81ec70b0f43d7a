"""The local stack holds every function to its synthesized IAM policy, as AWS
would: what each function used is recorded, and a stack whose policy lacks a
grant a handler needs refuses that call (the handler's error path runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from local.iam.template import load_snapshot
from local.testing import LocalStack
from tests.e2e.conftest import start_local_stack
from tests.e2e.support import next_event, online, send_message, sign_in


def _record(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_the_session_stack_records_the_grants_its_functions_use(
    local_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        await sign_in(local_stack, http)
    record = _record(local_stack.local_file.parent / "iam-record.jsonl")
    # grant: (function, statement index, action pattern, resource index)
    used = {(entry["grant"][0], entry["grant"][2]) for entry in record if entry["kind"] == "used"}
    assert ("HttpApi", "dynamodb:PutItem") in used  # the code's challenge, the new device
    assert ("HttpApi", "sns:Publish") in used  # the code, texted
    assert ("HttpApi", "secretsmanager:GetSecretValue") in used  # the tokens' signing key
    assert not [entry for entry in record if entry["kind"] == "denied"]


async def test_a_stack_without_syncs_mailbox_read_refuses_it_as_aws_would(
    tmp_path: Path,
) -> None:
    snapshot = load_snapshot()
    statements = snapshot["functions"]["WsSync"]["statements"]
    snapshot["functions"]["WsSync"]["statements"] = [
        s for s in statements if "dynamodb:Query" not in json.dumps(s["Action"])
    ]
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps(snapshot))
    record = tmp_path / "own-record.jsonl"
    env = {"PARLEY_IAM_POLICIES": str(policies), "PARLEY_IAM_RECORD": str(record)}
    with start_local_stack(tmp_path, env=env) as stack:
        async with aiohttp.ClientSession() as http:
            alice = await sign_in(stack, http)
            bob = await sign_in(stack, http)
        async with online(stack, alice) as alice_ws:
            await send_message(alice_ws, bob, {bob.device_id: b"hello"}, "m1")
        async with online(stack, bob) as bob_ws:
            await bob_ws.send(json.dumps({"action": "sync"}))
            error = await next_event(bob_ws, "error")
    assert error["code"] == "service_unavailable"
    denials = [entry for entry in _record(record) if entry["kind"] == "denied"]
    assert {(d["function_id"], d["action"]) for d in denials} == {("WsSync", "dynamodb:Query")}
    # sync reads the mailbox in delivery order, through its index
    assert denials[0]["resource"].endswith(":table/parley-local-mailbox/index/by_order")
    assert "AWS would refuse this call" in stack.output()
