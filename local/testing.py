"""Helpers for tests and benchmarks that drive the local stack.

A gateway with stand-in handlers, for tests of the gateway itself (and of
anything that wants API Gateway's behaviour without the real functions):

    async with running_gateway(FakeFunctions({"WsSend": echo})) as gateway:
        ...connect to gateway.ws_url...
        event = await functions.wait_for("WsDisconnect")

and the whole stack, `python -m local`, in a child process of its own (moto's
in-process mock and moto's server share global state, so a test process never
runs the stack in itself):

    with running_local_stack(folder) as stack:
        ...stack.http_url, stack.ws_url, stack.sms_url...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from local.environments import CONCURRENCY_ENV
from local.gateway import Gateway, GatewayOptions
from local.lambdas import Handler, Invoker
from parley_server.catalogue import FUNCTIONS

__all__ = [
    "IAM_RECORDS",
    "FakeFunctions",
    "LocalStack",
    "StackDidNotStart",
    "allow_policy",
    "running_gateway",
    "running_local_stack",
    "stack_environment",
    "stop",
    "ws_connect",
]

Behaviour = Callable[[dict[str, Any]], Any]


def allow_policy(
    event: Mapping[str, Any], *, principal: str = "user", context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An authorizer answer allowing `event`'s methodArn, as Powertools builds it."""
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": [event["methodArn"]],
                }
            ],
        },
        "context": dict(context or {}),
    }


def _default(function_id: str) -> Behaviour:
    if function_id == "WsAuthorizer":
        return lambda event: allow_policy(
            event, context={"user_id": "a" * 32, "device_id": "b" * 16}
        )
    return lambda event: {"statusCode": 200}


class FakeFunctions(Mapping[str, Handler]):
    """Handlers by function id that record every event, then behave as told
    (a callable of the event; unnamed functions allow / answer 200)."""

    def __init__(self, behaviours: Mapping[str, Behaviour] | None = None) -> None:
        self.behaviours = dict(behaviours or {})
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._ids = tuple(spec.id for spec in FUNCTIONS)

    def __getitem__(self, function_id: str) -> Handler:
        behaviour = self.behaviours.get(function_id) or _default(function_id)

        def handler(event: dict[str, Any], context: Any) -> Any:
            with self._lock:
                self.events.append((function_id, event))
            return behaviour(event)

        return handler

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def events_of(self, function_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [event for fid, event in self.events if fid == function_id]

    async def wait_for(
        self, function_id: str, count: int = 1, *, timeout_s: float = 10.0
    ) -> dict[str, Any]:
        """The `count`-th event `function_id` received, once it has arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.events_of(function_id)
            if len(seen) >= count:
                return seen[count - 1]
            if time.monotonic() > deadline:
                raise AssertionError(f"{function_id} got {len(seen)} events, expected {count}")
            await asyncio.sleep(0.01)


@asynccontextmanager
async def running_gateway(
    functions: Mapping[str, Handler],
    options: GatewayOptions | None = None,
    **gateway_kwargs: Any,
) -> AsyncIterator[Gateway]:
    """A gateway on a free loopback port, invoking `functions`; stopped on exit."""
    options = replace(options or GatewayOptions(), port=0)
    executor = ThreadPoolExecutor(8, thread_name_prefix="fake-lambda")
    invoker = Invoker(functions, executor, region=options.region, account_id=options.account_id)
    gateway = Gateway(invoker, options, **gateway_kwargs)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop(grace_s=2.0)
        executor.shutdown(wait=False, cancel_futures=True)


def ws_connect(gateway: Gateway, query: str = "token=t", **kwargs: Any) -> Any:
    """A websockets client connection to the gateway's WebSocket API (no proxy,
    no compression: API Gateway negotiates none)."""
    from websockets.asyncio.client import connect

    kwargs.setdefault("proxy", None)
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", 10)
    url = f"{gateway.ws_url}?{query}" if query else gateway.ws_url
    return connect(url, **kwargs)


# -- the whole stack in a child process ---------------------------------------------------

_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0
# Where every local stack started by running_local_stack records its IAM
# decisions (local/iam/enforce.py); tests/conftest.py reads them at the end.
IAM_RECORDS: list[Path] = []
STOP_TIMEOUT_S = 15.0


@dataclass
class LocalStack:
    """A running local stack: its endpoints (as written to its endpoints file)."""

    http_url: str
    ws_url: str
    sms_url: str
    push_url: str
    region: str
    aws_endpoint_url: str
    local_file: Path
    log_file: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        """Everything the stack has printed so far."""
        return self.log_file.read_text(errors="replace")

    def moto(self, service: str) -> Any:
        """A boto3 client for the stack's moto server (what the handlers see)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint_url,
            region_name=self.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 (moto takes any)
        )

    def mailbox(self, user_id: str, device_id: str) -> list[dict[str, Any]]:
        """Every item waiting in one device's mailbox, as DynamoDB holds it."""
        ddb = self.moto("dynamodb")
        (table,) = [t for t in ddb.list_tables()["TableNames"] if t.endswith("-mailbox")]
        items: list[dict[str, Any]] = ddb.query(
            TableName=table,
            KeyConditionExpression="device = :d",
            ExpressionAttributeValues={":d": {"S": f"{user_id}#{device_id}"}},
        )["Items"]
        return items


class StackDidNotStart(RuntimeError):
    """`python -m local` exited, or wrote no endpoints file in time; says what it printed."""


def stack_environment(local_file: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for the stack's: the stack points AWS at its own moto,
    so nothing AWS_ or PARLEY_ of this process's may leak in, but for
    PARLEY_LOCAL_CONCURRENCY (environments per function: about the machine, so a
    developer's `PARLEY_LOCAL_CONCURRENCY=8 make soak` reaches the stacks the tests
    start). Its state is a fresh one beside the endpoints file (local_file's
    directory/local-state), never the developer's ~/.parley/local-state; `extra` or
    --state-dir may name another."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PARLEY_")) or k == CONCURRENCY_ENV
    }
    env["PARLEY_LOCAL_FILE"] = str(local_file)
    env["PARLEY_LOCAL_STATE"] = str(local_file.parent / "local-state")
    env.update(extra or {})
    return env


def stop(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, as Ctrl-C or a supervisor would (killed if it lingers); the exit code.
    A stack that lingers is first asked (SIGQUIT) to print its threads' stacks to its
    log, so that what it waited for can be read there."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(1.0)
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def running_local_stack(
    directory: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    start_timeout_s: float = START_TIMEOUT_S,
    new_session: bool = False,
) -> Iterator[LocalStack]:
    """`python -m local --port 0 *args` in a child process, its output in
    directory/local-stack.log, until it has written its endpoints file
    (directory/local.json); stopped on exit. `env` adds to its environment;
    `new_session` gives it a process group of its own (a test can signal the
    group as a terminal's Ctrl-C does)."""
    local_file = directory / "local.json"
    log_file = directory / "local-stack.log"
    # the stack records every IAM decision here; the test session checks them all
    iam_record = directory / "iam-record.jsonl"
    IAM_RECORDS.append(iam_record)
    env = {"PARLEY_IAM_RECORD": str(iam_record), **(env or {})}
    with log_file.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 (this interpreter, the stack's own options)
            [sys.executable, "-m", "local", "--port", "0", *args],
            cwd=_ROOT,
            env=stack_environment(local_file, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    try:
        deadline = time.monotonic() + start_timeout_s
        while not local_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                raise StackDidNotStart(
                    "the local stack did not start:\n" + log_file.read_text(errors="replace")
                )
            time.sleep(0.05)
        endpoints: dict[str, Any] = json.loads(local_file.read_text())
        yield LocalStack(
            http_url=endpoints["http_url"],
            ws_url=endpoints["ws_url"],
            sms_url=endpoints["sms_url"],
            push_url=endpoints["push_url"],
            region=endpoints["region"],
            aws_endpoint_url=endpoints["aws_endpoint_url"],
            local_file=local_file,
            log_file=log_file,
            process=process,
        )
    finally:
        stop(process)
