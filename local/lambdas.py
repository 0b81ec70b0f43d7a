"""Running handlers as Lambda would: with a context object, a time limit, and
JSON in and out.

Lambda hands a handler a freshly decoded event and JSON-encodes what it
returns; doing the same here means a handler that returns something JSON cannot
carry (a DynamoDB Decimal, a datetime) fails locally exactly as it would on AWS.

The local stack runs the real handlers in processes, one per Lambda execution
environment (`Invoker(Environments(...))`, local/environments.py). Handlers handed
in as callables (`Invoker({"WsSend": fn}, executor)`: the gateway's tests' stand-ins)
run in this process instead, in the executor's threads, one invocation of a
function at a time.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from local import faults
from local.environments import Environments, Failed
from local.iam.enforce import acting_as
from parley_server.catalogue import FUNCTIONS, FunctionSpec

__all__ = [
    "CatalogueHandlers",
    "FunctionError",
    "Handler",
    "Invoker",
    "LambdaContext",
]

log = logging.getLogger("local")

Handler = Callable[[dict[str, Any], Any], Any]

# Lambda's synchronous invocation limit for the response payload.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024


class FunctionError(Exception):
    """An invocation failed: the handler raised, timed out, or answered badly.

    `message` is what Lambda reports as errorMessage (API Gateway's authorizer
    integration looks at it: "Unauthorized" means 401)."""

    def __init__(self, function_id: str, message: str, *, kind: str) -> None:
        super().__init__(f"{function_id}: {kind}: {message}")
        self.function_id = function_id
        self.message = message
        self.kind = kind


class LambdaContext:
    """What Lambda's Python runtime passes as `context` (the attributes Powertools reads)."""

    def __init__(self, spec: FunctionSpec, *, region: str, account_id: str) -> None:
        self.function_name = f"parley-local-{spec.id}"
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{region}:{account_id}:function:{self.function_name}"
        )
        # the runtime reads this from AWS_LAMBDA_FUNCTION_MEMORY_SIZE, so it is a string
        self.memory_limit_in_mb = str(spec.memory_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class CatalogueHandlers(Mapping[str, Handler]):
    """The real handlers, by function id, imported on first use (a cold start).

    A module that does not import yet is an invocation error, not a start-up
    failure, so the stack serves whatever exists."""

    def __init__(self, functions: tuple[FunctionSpec, ...] = FUNCTIONS) -> None:
        self._specs = {spec.id: spec for spec in functions}
        self._loaded: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def __getitem__(self, function_id: str) -> Handler:
        found = self._loaded.get(function_id)
        if found is not None:
            return found
        spec = self._specs[function_id]
        module_name, _, attribute = spec.handler.rpartition(".")
        with self._lock:
            module = importlib.import_module(module_name)
            handler: Handler = getattr(module, attribute)
            self._loaded[function_id] = handler
        return handler

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


@dataclass
class Invoker:
    """Invokes functions by id: off the event loop, within their timeout; in
    environments (processes), or callables in the executor's threads."""

    handlers: Mapping[str, Handler] | Environments
    executor: Executor | None = None
    region: str = "us-east-1"
    account_id: str = "123456789012"
    functions: tuple[FunctionSpec, ...] = FUNCTIONS
    # In threads, one invocation per function at a time: a Lambda execution
    # environment never runs two requests at once, and handler modules keep
    # per-request state in module globals (Powertools' resolver holds the current
    # event), which two threads in one process would trample. Different functions
    # still run in parallel.
    _busy: dict[str, threading.Lock] = field(default_factory=dict, init=False, repr=False)

    def spec(self, function_id: str) -> FunctionSpec:
        for spec in self.functions:
            if spec.id == function_id:
                return spec
        raise KeyError(function_id)

    async def invoke(
        self, function_id: str, event: Mapping[str, Any], *, limit_s: float | None = None
    ) -> Any:
        """The handler's JSON-decoded result, or FunctionError.

        `limit_s` is the caller's own timeout (API Gateway's integration timeout);
        the shorter of it and the function's timeout wins."""
        spec = self.spec(function_id)
        payload = json.dumps(event)
        if isinstance(self.handlers, Environments):
            try:
                answer = await self.handlers.invoke(
                    spec, payload.encode(), timeout_s=float(spec.timeout_s), limit_s=limit_s
                )
            except Failed as failed:
                raise FunctionError(function_id, failed.message, kind=failed.kind) from None
            return json.loads(answer)
        timeout = float(spec.timeout_s) if limit_s is None else min(spec.timeout_s, limit_s)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, self._run, spec, payload)
        try:
            raw = await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            # The thread cannot be stopped; its result is dropped, as Lambda drops
            # the environment of a timed-out invocation.
            future.add_done_callback(_discard)
            log.error("%s timed out after %.1f s", function_id, timeout)
            raise FunctionError(
                function_id, f"Task timed out after {timeout:.2f} seconds", kind="timeout"
            ) from None
        return json.loads(raw)

    async def close(self) -> None:
        """Stop the environments (when running in processes)."""
        if isinstance(self.handlers, Environments):
            await self.handlers.close()

    def _run(self, spec: FunctionSpec, payload: str) -> str:
        assert not isinstance(self.handlers, Environments)
        try:
            handler = self.handlers[spec.id]
        except Exception as exc:
            log.exception("%s: cannot load %s", spec.id, spec.handler)
            raise FunctionError(spec.id, repr(exc), kind="import") from exc
        context = LambdaContext(spec, region=self.region, account_id=self.account_id)
        busy = self._busy.setdefault(spec.id, threading.Lock())
        try:
            # faults: a no-op unless enabled; acting_as: its calls are held to its IAM policy
            with busy, faults.invocation(spec.id), acting_as(spec.id):
                result = handler(json.loads(payload), context)
        except Exception as exc:
            log.exception("%s raised", spec.id)
            raise FunctionError(spec.id, str(exc), kind="unhandled") from exc
        try:
            raw = json.dumps(result)
        except (TypeError, ValueError) as exc:
            log.error("%s returned something JSON cannot carry: %s", spec.id, exc)
            raise FunctionError(spec.id, str(exc), kind="serialization") from exc
        if len(raw.encode()) > MAX_RESPONSE_BYTES:
            log.error("%s returned more than Lambda's 6 MB response limit", spec.id)
            raise FunctionError(spec.id, "response too large", kind="payload")
        return raw


def _discard(future: asyncio.Future[Any]) -> None:
    # the late outcome of a timed-out invocation; reading it keeps asyncio quiet
    if not future.cancelled():
        future.exception()
