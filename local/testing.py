"""A gateway with stand-in handlers, for tests of the gateway itself (and of
anything that wants API Gateway's behaviour without the real functions).

    async with running_gateway(FakeFunctions({"WsSend": echo})) as gateway:
        ...connect to gateway.ws_url...
        event = await functions.wait_for("WsDisconnect")
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from local.gateway import Gateway, GatewayOptions
from local.lambdas import Handler, Invoker
from parley_server.catalogue import FUNCTIONS

__all__ = ["FakeFunctions", "allow_policy", "running_gateway", "ws_connect"]

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
