"""Handlers for tests/unit/local/test_environments.py, imported in environments
(processes of their own), so their module state is each environment's own."""

from __future__ import annotations

import os
import socket
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

from local.runtime import MAX_RESPONSE_BYTES

invocations = 0  # this environment's own count


def handler(event: dict[str, Any], context: Any) -> Any:
    global invocations
    invocations += 1
    action = event.get("do")
    if action == "raise":
        raise RuntimeError("Unauthorized")
    if action == "decimal":
        return {"count": Decimal(1)}
    if action == "huge":
        return "x" * MAX_RESPONSE_BYTES
    if action == "hang":
        ours, theirs = socket.socketpair()
        ours.recv(1)  # nothing ever comes: only a kill ends it
        theirs.close()
    if action == "gate":
        # connect to the test, and answer once it says so (it counts who is inside)
        with socket.create_connection(("127.0.0.1", event["port"])) as gate:
            gate.sendall(f"{os.getpid()}\n".encode())
            gate.recv(1)
    if action == "print":
        print("printed by a handler")  # must not disturb the frames
    if action == "dynamodb":
        ddb = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9")
        try:
            ddb.get_item(TableName="parley-local-users", Key={"k": {"S": "v"}})
        except ClientError as error:
            return {"code": error.response["Error"]["Code"], "message": str(error)}
    if action == "environ":
        return {"environ": dict(os.environ), "cwd": os.getcwd()}
    return {
        "pid": os.getpid(),
        "invocations": invocations,
        "event": event,
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
