"""Fault injection for the local stack, for the reliability suites. OFF unless
PARLEY_LOCAL_FAULTS is set; never part of the Lambda asset (it lives in local/).

PARLEY_LOCAL_FAULTS is a JSON object (every key optional):

    {"seed": 7,                 # the random sequence (a run can be repeated)
     "throttle": 0.03,          # chance that one DynamoDB call of a handler is throttled
     "gone": 0.02,              # chance that one PostToConnection meets a dead connection
     "functions": ["WsSend"],   # which functions suffer (default: every one)
     "report": "/tmp/f.json"}   # where the counts of injected faults are kept

Faults are injected where a handler meets AWS: a botocore `before-call` hook
answers the call with the service's own error instead of sending it, so the
handler sees exactly what boto3 raises after its retries are spent
(ThrottlingException / ProvisionedThroughputExceededException from DynamoDB,
GoneException from the @connections API). A GoneException is made true: the
connection is closed as the error is answered, as when a client vanishes at
that moment. Only calls made inside a handler invocation (see `invocation`)
are touched; the stack's own calls (provisioning, the SNS sinks) never are.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ENV",
    "FaultPlan",
    "Faults",
    "active",
    "add_counts",
    "in_environment",
    "invocation",
    "take_counts",
]

log = logging.getLogger("local")

ENV = "PARLEY_LOCAL_FAULTS"

_THROTTLES = ("ThrottlingException", "ProvisionedThroughputExceededException")


@dataclass(frozen=True)
class FaultPlan:
    """What to inject, and how often."""

    seed: int = 0
    throttle: float = 0.0
    gone: float = 0.0
    functions: frozenset[str] | None = None
    report: Path | None = None

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError(f"{ENV} must be a JSON object")
        unknown = set(raw) - {"seed", "throttle", "gone", "functions", "report"}
        if unknown:
            raise ValueError(f"{ENV} has unknown keys: {sorted(unknown)}")
        for name in ("throttle", "gone"):
            value = raw.get(name, 0.0)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{ENV}: {name} must be a probability")
        functions = raw.get("functions")
        if functions is not None and not (
            isinstance(functions, list) and all(isinstance(f, str) for f in functions)
        ):
            raise ValueError(f"{ENV}: functions must be a list of function ids")
        report = raw.get("report")
        return cls(
            seed=int(raw.get("seed", 0)),
            throttle=float(raw.get("throttle", 0.0)),
            gone=float(raw.get("gone", 0.0)),
            functions=frozenset(functions) if functions is not None else None,
            report=Path(report) if report else None,
        )


class _Answer:
    """The part of an HTTP response botocore reads when a hook answers a call."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


# what a hook answers instead of the call: (the HTTP answer, the parsed error)
_Injected = tuple[_Answer, dict[str, Any]]


class Faults:
    """Decides, per AWS call of a handler, whether it fails; counts what it injected."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.counts: Counter[str] = Counter()
        # counted since the last take(): what an environment hands to the stack
        self._pending: Counter[str] = Counter()
        # the stack's own Faults keeps the report; an environment's hands its counts up
        self._keeps_report = True
        self._random = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._current = threading.local()
        self._closer: Any = None

    # -- the invocation a call belongs to ----------------------------------------------

    @contextlib.contextmanager
    def invocation(self, function_id: str) -> Iterator[None]:
        """Calls made by this thread until exit belong to `function_id`."""
        self._current.function = function_id
        try:
            yield
        finally:
            self._current.function = None

    def _function(self) -> str | None:
        function_id: str | None = getattr(self._current, "function", None)
        if function_id is None:
            return None
        if self.plan.functions is not None and function_id not in self.plan.functions:
            return None
        return function_id

    # -- the botocore hook -------------------------------------------------------------

    def before_call(self, model: Any, params: Any, **_: Any) -> _Injected | None:
        """botocore's `before-call` event: an answer short-circuits the call."""
        function_id = self._function()
        if function_id is None:
            return None
        service = model.service_model.service_name
        if service == "dynamodb":
            return self._throttle(function_id, model.name)
        if service == "apigatewaymanagementapi" and model.name == "PostToConnection":
            return self._gone(function_id, params)
        return None

    def _roll(self, chance: float) -> bool:
        if chance <= 0.0:
            return False
        with self._lock:
            return self._random.random() < chance

    def _throttle(self, function_id: str, operation: str) -> _Injected | None:
        if not self._roll(self.plan.throttle):
            return None
        with self._lock:
            code = self._random.choice(_THROTTLES)
        self._count("throttle", function_id)
        log.info("fault: %s %s throttled (%s)", function_id, operation, code)
        return _Answer(400), _error(400, code, "injected by the local stack")

    def _gone(self, function_id: str, params: Any) -> _Injected | None:
        if not self._roll(self.plan.gone):
            return None
        connection_id = _connection_of(params)
        self._count("gone", function_id)
        log.info("fault: %s post to %s is gone", function_id, connection_id)
        if connection_id:
            self._close(connection_id)
        return _Answer(410), _error(410, "GoneException", None)

    def _close(self, connection_id: str) -> None:
        """Close the connection for real (a DeleteConnection, as API Gateway's own)."""
        try:
            self._management().delete_connection(ConnectionId=connection_id)
        except Exception as exc:  # already gone: the fault is true anyway
            log.info("fault: closing %s: %s", connection_id, type(exc).__name__)

    def _management(self) -> Any:
        with self._lock:
            if self._closer is None:
                import boto3

                endpoint = os.environ["PARLEY_WS_ENDPOINT"]
                self._closer = boto3.session.Session().client(
                    "apigatewaymanagementapi", endpoint_url=endpoint
                )
            return self._closer

    # -- the figures ---------------------------------------------------------------------

    def _count(self, kind: str, function_id: str) -> None:
        self.add({kind: 1, f"{kind}:{function_id}": 1})

    def add(self, counts: dict[str, int]) -> None:
        """Count faults (injected here, or in an environment that handed them up)."""
        with self._lock:  # one writer at a time: they share the partial file
            self.counts.update(counts)
            if not self._keeps_report:
                self._pending.update(counts)
            elif self.plan.report is not None:
                _write(self.plan.report, dict(self.counts))

    def take(self) -> dict[str, int]:
        """What was counted since the last take (an environment's, for the stack)."""
        with self._lock:
            taken = dict(self._pending)
            self._pending.clear()
            return taken

    def as_environment(self, name: str) -> None:
        """This process is one Lambda environment (local/runtime.py) among several:
        its own random sequence (from the plan's seed and `name`, so a run with a
        fixed seed repeats), and its counts handed to the stack, which keeps the report."""
        with self._lock:
            self._random = random.Random(f"{self.plan.seed}:{name}")
            self._keeps_report = False


def _error(status: int, code: str, message: str | None) -> dict[str, Any]:
    return {
        "Error": {"Code": code, "Message": message or ""},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
    }


def _connection_of(params: Any) -> str | None:
    # the serialized request: /@connections/{connectionId}, percent-encoded
    from urllib.parse import unquote

    path = params.get("url_path") if isinstance(params, dict) else None
    if not isinstance(path, str) or "/" not in path:
        return None
    return unquote(path.rstrip("/").rsplit("/", 1)[-1]) or None


def _write(path: Path, counts: dict[str, int]) -> None:
    # write-then-rename: a reader never sees half a file
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(counts, sort_keys=True))
    partial.replace(path)


# -- the process's faults, from the environment --------------------------------------------

_LOCK = threading.Lock()
_STATE: dict[str, Faults | None] = {}


def active() -> Faults | None:
    """This process's faults: None (the default) unless PARLEY_LOCAL_FAULTS is set.

    The first call installs the botocore hook for every session made afterwards and
    forgets the handlers' cached clients, so each is rebuilt with the hook."""
    with _LOCK:
        if "faults" in _STATE:
            return _STATE["faults"]
        text = os.environ.get(ENV)
        faults = Faults(FaultPlan.from_json(text)) if text else None
        if faults is not None:
            from botocore import handlers

            from parley_server.store.aws import reset_clients

            handlers.BUILTIN_HANDLERS.append(("before-call", faults.before_call))
            reset_clients()
            log.warning("fault injection is ON: %s", faults.plan)
        _STATE["faults"] = faults
        return faults


def invocation(function_id: str) -> contextlib.AbstractContextManager[None]:
    """Wrap one handler invocation (a no-op unless faults are on)."""
    faults = active()
    if faults is None:
        return contextlib.nullcontext()
    return faults.invocation(function_id)


def in_environment(name: str) -> None:
    """Set up this process as the Lambda environment `name` (see Faults.as_environment)."""
    faults = active()
    if faults is not None:
        faults.as_environment(name)


def take_counts() -> dict[str, int]:
    """The faults this environment injected since the last call ({} when off)."""
    faults = active()
    return faults.take() if faults is not None else {}


def add_counts(counts: dict[str, int]) -> None:
    """Count faults an environment injected, in this process's report."""
    faults = active()
    if faults is not None and counts:
        faults.add(counts)
