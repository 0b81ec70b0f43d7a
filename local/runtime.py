"""One Lambda execution environment: a process of its own, forked by
local/environments.py from its template (local/template.py), running one
function's handler.

As Lambda's runtime does, it initialises once (its module state, its cold start:
the handler module is imported here, with IAM enforcement and fault injection set
up first so every client the handler makes is judged and can be failed) and then
runs one invocation at a time, for as long as it is kept warm.

It speaks to the stack over a socket (`run`; local/environments.py reads and
writes the same frames): a frame is a JSON header line, then `n` bytes of body.
The first frame in is the set-up (a pickled `Init`, its environment variables
included); the environment answers `{"ready": true}`, or
`{"error": "import", ...}` and exits. Each later frame in is an event (JSON); the
answer is the handler's result JSON-encoded, or `{"error": kind, "message": ...}`
for an error Lambda would report. Both answers carry the faults injected
meanwhile (`"faults": {...}`), which the parent counts. What the handler prints
goes to stderr (the stack's log), never into the frames. The environment exits
when the stack closes its end of the socket.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.iam.template import FunctionPolicies
    from parley_server.catalogue import FunctionSpec

__all__ = ["MAX_RESPONSE_BYTES", "Init", "read_frame", "run", "write_frame"]

log = logging.getLogger("local")

# Lambda's synchronous invocation limit for the response payload.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # local/lambdas.py's too


@dataclass(frozen=True)
class Init:
    """What an environment is told before it imports its handler."""

    spec: FunctionSpec
    region: str
    account_id: str
    # which of its function's environments this is (0, 1, ...): names its log lines
    # and seeds its faults, so a run with a fixed seed is repeatable
    index: int = 0
    sys_path: tuple[str, ...] = ()
    log_level: int = logging.INFO
    # IAM enforcement (local/iam/enforce.py): the policies, and where to record
    policies: FunctionPolicies | None = None
    iam_record: Path | None = None
    # the process's variables (the stack's, then the function's): the template
    # that forked it has the stack's own
    environ: tuple[tuple[str, str], ...] = ()
    cwd: str = ""


def write_frame(out: IO[bytes], header: dict[str, Any], body: bytes = b"") -> None:
    if body:
        header = {**header, "n": len(body)}
    out.write(json.dumps(header).encode() + b"\n" + body)
    out.flush()


def read_frame(source: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    line = source.readline()
    if not line:
        return None
    header: dict[str, Any] = json.loads(line)
    size = int(header.get("n", 0))
    body = source.read(size) if size else b""
    if len(body) != size:
        return None
    return header, body


def _set_up(init: Init) -> None:
    if init.environ:
        os.environ.clear()
        os.environ.update(dict(init.environ))
    if init.cwd:
        os.chdir(init.cwd)
    for entry in reversed(init.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    logging.basicConfig(
        level=init.log_level,
        format=f"%(asctime)s %(levelname)s %(name)s [{init.spec.id}#{init.index}]: %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if init.policies is not None:
        from local.iam import enforce

        enforce.install()
        enforce.configure(init.policies)
        enforce.RECORD.path = init.iam_record
    from local import faults

    faults.in_environment(f"{init.spec.id}#{init.index}")


def _load(spec: FunctionSpec) -> Any:
    module_name, _, attribute = spec.handler.rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, attribute)


def _invoke(init: Init, handler: Any, event: bytes) -> tuple[dict[str, Any], bytes]:
    from local import faults
    from local.iam.enforce import acting_as
    from local.lambdas import LambdaContext

    spec = init.spec
    context = LambdaContext(spec, region=init.region, account_id=init.account_id)
    try:
        with faults.invocation(spec.id), acting_as(spec.id):
            result = handler(json.loads(event), context)
    except Exception as exc:
        log.exception("%s raised", spec.id)
        return {"error": "unhandled", "message": str(exc)}, b""
    try:
        raw = json.dumps(result).encode()
    except (TypeError, ValueError) as exc:
        log.error("%s returned something JSON cannot carry: %s", spec.id, exc)
        return {"error": "serialization", "message": str(exc)}, b""
    if len(raw) > MAX_RESPONSE_BYTES:
        log.error("%s returned more than Lambda's 6 MB response limit", spec.id)
        return {"error": "payload", "message": "response too large"}, b""
    return {"ok": True}, raw


def serve(source: IO[bytes], out: IO[bytes]) -> int:
    """Set up from the first frame, then answer invocations until `source` closes."""
    from local import faults

    first = read_frame(source)
    if first is None:
        return 0
    init: Init = pickle.loads(first[1])  # noqa: S301 (from the parent that started us)
    _set_up(init)
    try:
        handler = _load(init.spec)
    except Exception as exc:
        log.exception("%s: cannot load %s", init.spec.id, init.spec.handler)
        write_frame(out, {"error": "import", "message": repr(exc)})
        return 1
    write_frame(out, {"ready": True})
    while (frame := read_frame(source)) is not None:
        answer, body = _invoke(init, handler, frame[1])
        counts = faults.take_counts()
        if counts:
            answer["faults"] = counts
        write_frame(out, answer, body)
    return 0


def run(channel: socket.socket) -> None:
    """An environment's life, in the process forked for it: frames over `channel`;
    exits with `serve`'s code."""
    # Ctrl-C in a terminal reaches the whole process group: the stack stops its
    # environments itself, and one must never die half-way through an invocation
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # anything printed goes to stderr (the stack's log)
    os.dup2(2, 1)
    with channel, channel.makefile("rb") as source, channel.makefile("wb") as out:
        code = serve(source, out)
    sys.exit(code)
