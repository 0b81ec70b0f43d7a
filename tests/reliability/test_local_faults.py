"""The local stack's fault injection (local/faults.py): off unless asked for,
only inside a handler invocation, only for the functions named, and what it
injects is exactly what boto3 raises for the real fault."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from local import faults
from local.faults import ENV, FaultPlan, Faults
from local.testing import FakeFunctions, running_gateway, ws_connect


def _client(service: str, plan: FaultPlan, **kwargs: Any) -> tuple[Any, Faults]:
    injected = Faults(plan)
    made = boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        **kwargs,
    )
    made.meta.events.register("before-call", injected.before_call)
    return made, injected


def test_without_the_variable_nothing_is_injected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(faults, "_STATE", {})

    assert faults.active() is None
    with faults.invocation("WsSend"):
        pass  # a no-op context


@pytest.mark.parametrize(
    "text",
    [
        '{"throttle": 1.5}',
        '{"gone": -0.1}',
        '{"throttl": 0.1}',
        '{"functions": "WsSend"}',
        "[]",
    ],
)
def test_a_plan_that_makes_no_sense_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=ENV):
        FaultPlan.from_json(text)


def test_dynamodb_calls_of_a_named_function_are_throttled_and_counted(tmp_path: Path) -> None:
    report = tmp_path / "faults.json"
    plan = FaultPlan(throttle=1.0, functions=frozenset({"WsSend"}), report=report)
    ddb, injected = _client("dynamodb", plan)

    with injected.invocation("WsSend"), pytest.raises(ClientError) as throttled:
        ddb.get_item(TableName="t", Key={"k": {"S": "v"}})

    assert throttled.value.response["Error"]["Code"] in (
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
    )
    assert json.loads(report.read_text()) == {"throttle": 1, "throttle:WsSend": 1}


def test_calls_outside_an_invocation_or_of_other_functions_go_through() -> None:
    plan = FaultPlan(throttle=1.0, functions=frozenset({"WsSend"}))
    ddb, injected = _client(
        "dynamodb",
        plan,
        endpoint_url="http://127.0.0.1:9",  # nothing listens: a call that gets out fails so
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )

    def attempt(function_id: str | None) -> str:
        try:
            if function_id is None:
                ddb.list_tables()
            else:
                with injected.invocation(function_id):
                    ddb.list_tables()
        except EndpointConnectionError:
            return "went out"
        except ClientError:
            return "injected"
        return "answered"

    assert [attempt(None), attempt("WsAck")] == ["went out", "went out"]
    assert injected.counts == {}


async def test_a_gone_post_is_a_gone_exception_and_the_connection_really_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway, ws_connect(gateway) as ws:
        connected = await functions.wait_for("WsConnect")
        connection_id = connected["requestContext"]["connectionId"]
        # what the local stack's process has: the endpoint and (fake) credentials
        monkeypatch.setenv("PARLEY_WS_ENDPOINT", gateway.connections_url)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(name, "local")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        api, injected = _client(
            "apigatewaymanagementapi", FaultPlan(gone=1.0), endpoint_url=gateway.connections_url
        )

        def post() -> str:
            with injected.invocation("WsSend"):
                try:
                    api.post_to_connection(ConnectionId=connection_id, Data=b"{}")
                except ClientError as gone:
                    return str(gone.response["Error"]["Code"])
            return "posted"

        outcome = await asyncio.to_thread(post)
        await functions.wait_for("WsDisconnect")
        await asyncio.wait_for(ws.wait_closed(), 10)  # a guard against a hang
        closed = ws.close_code

    assert outcome == "GoneException"
    assert closed is not None
    assert injected.counts["gone"] == 1
