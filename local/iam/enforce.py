"""Holding every AWS call a function makes to that function's IAM policy.

While a handler runs as a function (`acting_as("WsAck")`: the local stack's
invoker and the integration tests' harnesses say so), each boto3 call it makes
is judged against the function's policy (local/iam/template.py) before it is
sent: a call AWS would refuse raises the ClientError botocore raises on AWS
(AccessDeniedException, AccessDenied, AuthorizationError, … with AWS's message
shape), so the handler's own error paths run. Calls made outside a function
(provisioning, a test reading a table) are not judged.

Presigned URLs are judged when they are signed: AWS signs anything and refuses
the request at use when the signer lacks the permission; here the signing
function is refused instead, which fails in the function that lacks the grant.

Every outcome is recorded (`RECORD`): the denials, for the test session's check
and the local stack's console, and which granted permissions were used, for the
least-privilege report (`make iam-report`). A local stack started with
PARLEY_IAM_RECORD=<file> appends both to that file as JSON lines.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from local.iam.policy import Decision, Outcome, Statement, action_matches, resource_matches
from local.iam.requests import UnknownCall, Where, needed
from local.iam.template import FunctionPolicies

__all__ = [
    "RECORD",
    "Denial",
    "Recorder",
    "acting_as",
    "configure",
    "expect_denials",
    "install",
]

log = logging.getLogger("local.iam")

_ACTING: contextvars.ContextVar[str | None] = contextvars.ContextVar("iam_acting", default=None)


@dataclass(frozen=True)
class Denial:
    function_id: str
    action: str
    resource: str
    decision: str
    # the statement that denied it explicitly, or None when nothing allowed it
    statement: str | None = None

    def describe(self) -> str:
        why = (
            f"denied by {self.statement}"
            if self.statement
            else "no statement of its policy allows it"
        )
        return f"{self.function_id}: {self.action} on {self.resource}: {why}"


@dataclass
class Recorder:
    """Denials, and the grants used: (function, statement index, action pattern,
    resource index), which name the same grant in every process."""

    denials: list[Denial] = field(default_factory=list)
    used: set[tuple[str, int, str, int]] = field(default_factory=set)
    calls: int = 0
    path: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, function_id: str, outcome: Outcome) -> None:
        with self._lock:
            self.calls += 1
            if outcome.allowed:
                grant = _grant_used(function_id, outcome)
                if grant is not None and grant not in self.used:
                    self.used.add(grant)
                    self._append({"kind": "used", "grant": list(grant)})
                return
            denial = Denial(
                function_id,
                outcome.action,
                outcome.resource,
                str(outcome.decision),
                outcome.statement.describe() if outcome.statement else None,
            )
            self.denials.append(denial)
            self._append({"kind": "denied", **denial.__dict__})

    def _append(self, line: dict[str, Any]) -> None:
        if self.path is not None:
            with self.path.open("a") as out:
                out.write(json.dumps(line) + "\n")

    def merge_file(self, path: Path) -> None:
        """Add what another process recorded in `path` (a local stack's record)."""
        if path.exists():
            self.merge_lines(path.read_text().splitlines())

    def lines(self) -> list[str]:
        """Everything recorded so far, in the record file's format (for merge_lines)."""
        with self._lock:
            used = [{"kind": "used", "grant": list(grant)} for grant in sorted(self.used)]
            denied = [{"kind": "denied", **denial.__dict__} for denial in self.denials]
            return [
                json.dumps(line) for line in (*used, *denied, {"kind": "calls", "n": self.calls})
            ]

    def merge_lines(self, lines: list[str]) -> None:
        """Add what another process recorded (record file lines, or `lines()`)."""
        for line in lines:
            entry = json.loads(line)
            kind = entry.pop("kind")
            if kind == "used":
                function_id, index, action, place = entry["grant"]
                self.used.add((function_id, int(index), action, int(place)))
            elif kind == "calls":
                self.calls += int(entry["n"])
            else:
                self.denials.append(Denial(**entry))


def _grant_used(function_id: str, outcome: Outcome) -> tuple[str, int, str, int] | None:
    statement: Statement | None = outcome.statement
    if statement is None or outcome.index is None:
        return None
    if not statement.actions or not statement.resources:
        return None
    action = next(p for p in statement.actions if action_matches(p, outcome.action))
    resource = next(
        i for i, p in enumerate(statement.resources) if resource_matches(p, outcome.resource)
    )
    return (function_id, outcome.index, action, resource)


RECORD = Recorder()


@dataclass
class _State:
    policies: FunctionPolicies | None = None
    recorder: Recorder = field(default_factory=lambda: RECORD)


_STATE = _State()
_INSTALLED: list[bool] = []


@contextlib.contextmanager
def acting_as(function_id: str) -> Iterator[None]:
    """Calls made in this block (this thread, this context) are `function_id`'s."""
    token = _ACTING.set(function_id)
    try:
        yield
    finally:
        _ACTING.reset(token)


def configure(policies: FunctionPolicies | None) -> None:
    """Judge calls against `policies` from now on (None: judge nothing)."""
    _STATE.policies = policies


@contextlib.contextmanager
def expect_denials() -> Iterator[Recorder]:
    """Record into a recorder of this block's own (a test that provokes denials on
    purpose), leaving the session's record clean."""
    previous = _STATE.recorder
    own = Recorder()
    _STATE.recorder = own
    try:
        yield own
    finally:
        _STATE.recorder = previous


# AWS's error for a refused call, by service: (code, HTTP status).
_ERRORS = {
    "dynamodb": ("AccessDeniedException", 400),
    "secretsmanager": ("AccessDeniedException", 400),
    "s3": ("AccessDenied", 403),
    "sns": ("AuthorizationError", 403),
    "sqs": ("AccessDenied", 403),
    "execute-api": ("ForbiddenException", 403),
    # the control plane's; kinesis-video-signaling (same endpoint prefix) says otherwise
    "kinesisvideo": ("AccessDeniedException", 401),
}


def _error(service: str, operation: str, function_id: str, outcome: Outcome) -> ClientError:
    policies = _STATE.policies
    account = policies.account_id if policies else "123456789012"
    principal = (
        f"arn:aws:sts::{account}:assumed-role/parley-local-{function_id}-role/"
        f"parley-local-{function_id}"
    )
    if outcome.decision is Decision.EXPLICIT_DENY:
        reason = "with an explicit deny in an identity-based policy"
    else:
        reason = f"because no identity-based policy allows the {outcome.action} action"
    message = (
        f"User: {principal} is not authorized to perform: {outcome.action} "
        f"on resource: {outcome.resource} {reason}"
    )
    code, status = _ERRORS[service]
    if service == "s3" and operation == "HeadObject":
        code, message = "403", "Forbidden"  # HEAD answers carry no body
    if service == "kinesisvideo" and operation == "GetIceServerConfig":
        code = "NotAuthorizedException"
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


def check(service: str, operation: str, params: dict[str, Any]) -> None:
    """Raise AWS's ClientError if the acting function may not make this call."""
    function_id = _ACTING.get()
    policies = _STATE.policies
    if function_id is None or policies is None:
        return
    where = Where(policies.region, policies.account_id, policies.connections_api_arn)
    try:
        requests = needed(service, operation, params, where)
    except UnknownCall as unknown:
        raise UnknownCall(
            f"{function_id} called {unknown}, which local/iam/requests.py has no IAM rule for"
        ) from None
    policy = policies.policy(function_id)
    recorder = _STATE.recorder
    for action, resource in requests:
        outcome = policy.evaluate(action, resource)
        recorder.record(function_id, outcome)
        if not outcome.allowed:
            log.error(
                "IAM: %s may not %s on %s (%s); AWS would refuse this call",
                function_id,
                action,
                resource,
                outcome.decision,
            )
            raise _error(service, operation, function_id, outcome)


def _before_parameter_build(
    params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
) -> None:
    if context.get("is_presign_request") and model.name == "CreateBucket":
        return  # a presigned POST: judged with its key by _wrap_presigned_post
    check(model.service_model.endpoint_prefix, model.name, params)


def _wrap_presigned_post(class_attributes: dict[str, Any], **_: Any) -> None:
    original: Callable[..., Any] | None = class_attributes.get("generate_presigned_post")
    if original is None:
        return

    def generate_presigned_post(self: Any, Bucket: str, Key: str, *args: Any, **kwargs: Any) -> Any:
        check("s3", "PutObject", {"Bucket": Bucket, "Key": Key})
        return original(self, Bucket, Key, *args, **kwargs)

    class_attributes["generate_presigned_post"] = generate_presigned_post


def install() -> None:
    """Register the check with botocore, for every session made from now on
    (as moto registers its own stub); once per process."""
    if _INSTALLED:
        return
    from botocore.handlers import BUILTIN_HANDLERS

    BUILTIN_HANDLERS.append(("before-parameter-build", _before_parameter_build))
    BUILTIN_HANDLERS.append(("creating-client-class.s3", _wrap_presigned_post))
    _INSTALLED.append(True)
    # clients made before this point would not run the check
    from parley_server.store.aws import reset_clients

    reset_clients()
