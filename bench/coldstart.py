"""Cold-start import time of every Lambda handler module, next to a bare boto3 handler.

Each module is imported in a fresh interpreter, several times, as Lambda's
bootstrap imports a handler (importlib.import_module, called from a function),
each time from another depth of the call stack (see _PROBE for why); the median is
reported. The interpreter is set up as Lambda's python runtime sets it up:

- the asset's packages first on the path (what stacks/asset.py puts in the
  asset: lambdas/requirements.txt and the packages they need, minus what the
  runtime provides, plus parley_server), copied from this machine's installed
  copies of those distributions, without bytecode: an asset built with no
  Python 3.13 to hand and none that uv could fetch (no network) ships none, and
  /var/task is read-only, so Lambda compiles every module at every cold start;
- then the runtime's boto3 and its dependencies (this machine's, compiled, as
  the runtime's are), and nothing else: no site-packages;
- LAMBDA_TASK_ROOT set, so the X-Ray SDK takes Lambda's context and builds no
  sampler, and Powertools' Tracer is on and patches boto3 (as deployed:
  POWERTOOLS_TRACE_DISABLED is not set), with the variables the stack gives
  every function.

Then the same again with the asset compiled (unchecked-hash .pyc, as
stacks/asset.py compiles it with a Python 3.13, the deploying machine's or one uv
fetches; this machine's Python stands in for it): the "compiled cold start"
figures. They are the asset `make synth` builds, so they are what the cold-start
targets judge (bench/targets.py); the figures without bytecode are for comparison.

Where the machine has a Python 3.13 (stacks/asset.py's `bytecode_python`: pyenv's
or uv's will do), both are measured again with it, Lambda's own version: the
asset's wheels fetched by pip for 3.13 and this processor, the runtime's boto3
compiled by it (the "Python 3.13 ..." figures; not in the quick pass).

All figures are measured in the same run on the same machine, so the ratio
is what to read, not the absolute milliseconds (this machine, not Lambda's
arm64).

The first invocation of each handler is measured too, in the same kind of
fresh interpreter: the import, then one representative request (the event in
tests/events, or one built here for the authorizer and GroupFanout), timed
until the handler returns. Its AWS calls go over loopback to moto's server in
this process, with the function's own settings and fake credentials; the
@connections API is a stub that accepts every post, and X-Ray segments go to a
UDP socket nobody reads (the trace is sampled, so the Tracer does its work).
So the figure is what the handler itself does on its first request (client
creation, service models, Powertools, our code) plus moto's answers over
loopback, not AWS's latency. Import and request are medians taken apart.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from bench.report import Figure, print_table
from parley_server.catalogue import FUNCTIONS, FunctionSpec, Setting
from stacks.asset import (
    RUNTIME_PROVIDED,
    bytecode_python,
    compile_bytecode,
    install_requirements,
    remove_runtime_provided,
)

__all__ = [
    "FirstInvocation",
    "LambdaLayout",
    "compile_asset",
    "first_invocations",
    "lambda_layout",
    "main",
    "probe_command",
    "probe_environment",
    "remove_bytecode",
    "run",
]

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = ROOT / "lambdas"
PACKAGE = "parley_server"
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")

# The module is imported as the runtime's bootstrap imports a handler (importlib, from
# inside a function), from a different depth of the call stack in each sample.
# CPython keeps frames in 16 KB chunks and frees a chunk as soon as the stack leaves
# it: a recursive function that happens to run across a chunk's end maps and unmaps
# memory at every call. Where that falls depends on how deep the stack is when a
# recursive step of the import runs (compiling a regex, for one): urllib3's URL
# patterns compile in 3.1 ms at most depths and in 9 to 28 ms at a few. One fixed
# depth would give a handler that lottery's result, whatever its own weight (a
# handler importing less once measured 20 ms slower than one importing more), so the
# samples spread over a chunk's worth of depths and the median is the typical cost.
_PROBE = (
    "import time, importlib\n"
    "def at(depth):\n"
    "    return at(depth - 1) if depth else importlib.import_module({mod!r})\n"
    "t = time.perf_counter()\n"
    "at({depth})\n"
    "print(time.perf_counter() - t)"
)
# one sample at each: a frame of `at` takes 100 to 130 bytes, a chunk 16 KB
PROBE_DEPTHS = (0, 23, 46, 69, 92, 115, 138)
EVENTS = ROOT / "tests" / "events"
# The caller and the recipient the events in tests/events name.
CALLER = ("5f0c2a9e8b7d4c1fa3e6b2d90c8e7f41", "9c41e7a2b5d03f68")
RECIPIENT = ("b2e47c1d9a0f4e3b8c6d5a7f1e2d3c4b", "3a7d5e9f1c2b4a60")
# A sampled trace, as Lambda sets it for an invocation: the Tracer records and emits.
_TRACE_ID = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
_RESULT = "@@first-invocation "
# argv: module, event file. The handler's own output (logs, EMF) goes to stdout too.
_FIRST = f"""
import time
started = time.perf_counter()
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
imported = time.perf_counter()
with open(sys.argv[2]) as f:
    event = json.load(f)
class Context:
    function_name = "parley-coldstart"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:parley-coldstart"
    aws_request_id = "00000000-0000-4000-8000-000000000001"
    log_group_name = log_stream_name = "parley-coldstart"
    def get_remaining_time_in_millis(self):
        return 10000
before = time.perf_counter()
try:
    answer = repr(module.handler(event, Context()))
except Exception as exc:
    answer = "raised " + repr(exc)
done = time.perf_counter()
print({_RESULT!r} + json.dumps({{"import": imported - started, "request": done - before,
      "answer": answer[:300]}}))
"""


@dataclass(frozen=True)
class LambdaLayout:
    """Directories laid out as Lambda's: the asset (/var/task) and the runtime's boto3."""

    task_root: Path
    runtime: Path


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _asset_distributions(requirements: Path) -> list[importlib.metadata.Distribution]:
    """The installed distributions the asset holds: the requirements and what they
    need (extras followed), less what the runtime provides."""
    wanted = [
        Requirement(line.split("#", 1)[0].strip())
        for line in requirements.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
    found: dict[str, importlib.metadata.Distribution] = {}
    while wanted:
        requirement = wanted.pop()
        name = _name(requirement.name)
        if name in RUNTIME_PROVIDED or name in found:
            continue
        dist = importlib.metadata.distribution(requirement.name)
        found[name] = dist
        for text in dist.requires or ():
            needed = Requirement(text)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in requirement.extras or {""}
            ):
                wanted.append(needed)
    return [found[name] for name in sorted(found)]


def _copy_distribution(dist: importlib.metadata.Distribution, target: Path) -> None:
    """Every file of `dist` under site-packages, without bytecode."""
    for file in dist.files or ():
        if file.parts[0] == ".." or "__pycache__" in file.parts or file.suffix in (".pyc", ".pyo"):
            continue
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            destination = target / file
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


def _link_runtime(target: Path) -> None:
    """boto3 and its dependencies, as installed here, each top-level entry linked."""
    for name in sorted(RUNTIME_PROVIDED):
        dist = importlib.metadata.distribution(name)
        tops = {file.parts[0] for file in dist.files or () if file.parts[0] != ".."}
        for top in sorted(tops):
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source)


@contextmanager
def lambda_layout(requirements: Path = LAMBDAS / "requirements.txt") -> Iterator[LambdaLayout]:
    """A throwaway asset and runtime directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="parley-coldstart-") as tmp:
        layout = LambdaLayout(task_root=Path(tmp) / "task", runtime=Path(tmp) / "runtime")
        layout.task_root.mkdir()
        layout.runtime.mkdir()
        for dist in _asset_distributions(requirements):
            _copy_distribution(dist, layout.task_root)
        shutil.copytree(LAMBDAS / PACKAGE, layout.task_root / PACKAGE, ignore=_JUNK)
        _link_runtime(layout.runtime)
        yield layout


@contextmanager
def lambda_layout_for(python: str) -> Iterator[LambdaLayout]:
    """The same layout for another interpreter (Lambda's Python 3.13): the asset's
    wheels from pip for that version and this machine's processor, as stacks/asset.py
    fetches them for Lambda's, and the runtime's boto3 copied and compiled by it (it is
    pure Python; the runtime ships it compiled)."""
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    machine = platform.machine()
    with tempfile.TemporaryDirectory(prefix="parley-coldstart-") as tmp:
        layout = LambdaLayout(task_root=Path(tmp) / "task", runtime=Path(tmp) / "runtime")
        install_requirements(
            LAMBDAS / "requirements.txt",
            layout.task_root,
            platforms=(f"manylinux2014_{machine}", f"manylinux_2_28_{machine}"),
            python_version=version,
        )
        remove_runtime_provided(layout.task_root)
        shutil.copytree(LAMBDAS / PACKAGE, layout.task_root / PACKAGE, ignore=_JUNK)
        layout.runtime.mkdir()
        for name in sorted(RUNTIME_PROVIDED):
            _copy_distribution(importlib.metadata.distribution(name), layout.runtime)
        subprocess.run(
            [python, "-m", "compileall", "-q", "-j", "0", str(layout.runtime)],
            check=True,
            capture_output=True,
        )
        yield layout


def compile_asset(layout: LambdaLayout, python: str = sys.executable) -> None:
    """Compile the asset as stacks/asset.py does with a Python 3.13 (`python`)."""
    compile_bytecode(python, layout.task_root)


def remove_bytecode(layout: LambdaLayout) -> None:
    for cache in sorted(layout.task_root.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)


def probe_environment(layout: LambdaLayout) -> dict[str, str]:
    """What the interpreter sees: Lambda's variables (those import-time code reads)
    and the ones the stack gives every function. No credentials: nothing is called."""
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{layout.task_root}{os.pathsep}{layout.runtime}",
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only
        "PYTHONNOUSERSITE": "1",
        "LAMBDA_TASK_ROOT": str(layout.task_root),
        "LAMBDA_RUNTIME_DIR": str(layout.runtime),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": "parley-coldstart",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "parley",
        "POWERTOOLS_METRICS_NAMESPACE": "Parley",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def probe_command(code: str, python: str = sys.executable) -> list[str]:
    """`python` without site-packages (-S): only the layout's directories and the stdlib."""
    return [python, "-S", "-c", code]


def _import_seconds(
    modules: list[str], repeats: int, layout: LambdaLayout, python: str = sys.executable
) -> dict[str, float]:
    """The median import time of each module, sampled in rounds: each round imports every
    module once, in an order turned by one each round. A machine that slows for a while
    then slows every module's samples alike, where a module's samples taken one after
    another could all land in the slow minute, and its ratio to boto3 with them."""
    samples: dict[str, list[float]] = {module: [] for module in modules}
    for n in range(repeats):
        depth = PROBE_DEPTHS[n % len(PROBE_DEPTHS)]
        turned = n % len(modules)
        for module in modules[turned:] + modules[:turned]:
            out = subprocess.run(
                probe_command(_PROBE.format(mod=module, depth=depth), python),
                check=True,
                capture_output=True,
                text=True,
                env=probe_environment(layout),
            )
            samples[module].append(float(out.stdout.strip().splitlines()[-1]))
    return {module: statistics.median(taken) for module, taken in samples.items()}


@dataclass(frozen=True)
class FirstInvocation:
    """Median import and first-request seconds of one handler, and what it answered."""

    import_s: float
    request_s: float
    answer: str

    @property
    def total_s(self) -> float:
        return self.import_s + self.request_s


class _ConnectionsStub(BaseHTTPRequestHandler):
    """The @connections API: every post is delivered (204), as to a live connection."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204 if self.command != "GET" else 200)
        self.send_header("Content-Length", "2" if self.command == "GET" else "0")
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(b"{}")

    do_POST = do_DELETE = do_GET = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _aws() -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """moto's server with every resource, the caller and recipient of the events signed
        up (with their signed device lists; neither has a connection, so a send stores
    the envelope and finds nobody to post to), a @connections stub and an X-Ray sink: the
        environment every function gets (settings for all), and the events to send."""
    from local import resources
    from parley_server.logic import tokens
    from parley_server.logic.ports import Caller
    from parley_server.store.push import ChallengeJob
    from parley_server.store.users import UsersStore
    from tests.device_lists import list_devices

    server, url = resources.start_moto()
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), _ConnectionsStub)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        aws = resources.provision(url, "us-east-1", prefix="parley-coldstart")
        env = resources.environment(
            aws, ws_endpoint=f"http://127.0.0.1:{gateway.server_address[1]}/local"
        )
        env.pop("POWERTOOLS_TRACE_DISABLED")
        env["AWS_XRAY_DAEMON_ADDRESS"] = f"127.0.0.1:{sink.getsockname()[1]}"
        env["_X_AMZN_TRACE_ID"] = _TRACE_ID
        now = time.time()
        ddb = resources.client(aws, "dynamodb")
        users = UsersStore(ddb, aws.settings[Setting.USERS_TABLE])
        for n, (user_id, device_id) in enumerate((CALLER, RECIPIENT)):
            users.create_user(user_id, f"+1206555{n:04d}", now)
            users.add_device(user_id, device_id, now)
            users.activate_device(user_id, device_id)
            list_devices(users, user_id, [device_id])  # senders deliver to listed devices
        secret = resources.client(aws, "secretsmanager").get_secret_value(
            SecretId=aws.settings[Setting.SIGNING_SECRET_ARN]
        )["SecretString"]
        token = tokens.issue_access_token(
            tokens.derive_keys(secret.encode()), Caller(*CALLER), now=now, ttl_s=3600
        )
        endpoint = resources.client(aws, "sns").create_platform_endpoint(
            PlatformApplicationArn=aws.push_apps["fcm"],
            Token="coldstart-token",  # noqa: S106 (a fake device token)
        )["EndpointArn"]
        events = _events(token, ChallengeJob(endpoint, "fcm", "c" * 32).to_json())
        yield env, events
    finally:
        sink.close()
        gateway.shutdown()
        server.stop()


def _events(token: str, challenge_job: str) -> dict[str, Any]:
    """One representative first request per handler module (by its short name)."""
    found: dict[str, Any] = {
        path.stem: json.loads(path.read_text()) for path in sorted(EVENTS.glob("ws_*.json"))
    }
    http = json.loads((EVENTS / "http_api_v2.json").read_text())
    http["headers"]["authorization"] = f"Bearer {token}"
    found["http_api"] = http
    found["ws_authorizer"] = {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/local/$connect",
        "queryStringParameters": {"token": token},
        "requestContext": {"connectionId": "L0SM9cOFvHcCIhw=", "routeKey": "$connect"},
    }
    found["group_fanout"] = {
        "Records": [
            {
                "messageId": "coldstart-1",
                "receiptHandle": "coldstart",
                "body": challenge_job,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1796044231000",
                    "SenderId": "AIDACOLDSTART",
                    "ApproximateFirstReceiveTimestamp": "1796044231000",
                    "MessageGroupId": "push-coldstart",
                    "MessageDeduplicationId": "coldstart-1",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:parley-coldstart-fanout.fifo",
                "awsRegion": "us-east-1",
            }
        ]
    }
    return found


def _function_environment(
    spec: FunctionSpec, aws_env: Mapping[str, str], layout: LambdaLayout
) -> dict[str, str]:
    """The Lambda variables, AWS pointed at moto, and only the function's own settings."""
    settings = {setting.value for setting in Setting}
    return {
        **probe_environment(layout),
        **{k: v for k, v in aws_env.items() if k not in settings},
        **{setting.value: aws_env[setting.value] for setting in spec.settings},
        "AWS_LAMBDA_FUNCTION_NAME": f"parley-{spec.id}",
    }


def first_invocations(repeats: int, layout: LambdaLayout) -> dict[str, FirstInvocation]:
    """Import + one first request of every handler module, each in fresh interpreters,
    sampled in rounds as `_import_seconds` samples imports."""
    with _aws() as (aws_env, events), tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, tuple[str, Path, dict[str, str]]] = {}
        for spec in FUNCTIONS:
            module = spec.handler.rsplit(".", 1)[0]
            name = module.removeprefix("parley_server.handlers.")
            if name in runs:
                continue
            event_file = Path(tmp) / f"{name}.json"
            event_file.write_text(json.dumps(events[name]))
            runs[name] = (module, event_file, _function_environment(spec, aws_env, layout))
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
        names = list(runs)
        for n in range(repeats):
            turned = n % len(names)
            for name in names[turned:] + names[:turned]:
                module, event_file, env = runs[name]
                done = subprocess.run(
                    [*probe_command(_FIRST), module, str(event_file)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                line = [x for x in done.stdout.splitlines() if x.startswith(_RESULT)][-1]
                samples[name].append(json.loads(line.removeprefix(_RESULT)))
    return {
        name: FirstInvocation(
            import_s=statistics.median(x["import"] for x in taken),
            request_s=statistics.median(x["request"] for x in taken),
            answer=taken[-1]["answer"],
        )
        for name, taken in samples.items()
    }


def _import_figures(
    group: str,
    how: str,
    layout: LambdaLayout,
    modules: list[str],
    repeats: int,
    python: str = sys.executable,
) -> list[Figure]:
    """The bare boto3 handler and every module, as `python` imports them in `layout`."""
    medians = _import_seconds(["boto3", *modules], repeats, layout, python)
    baseline = medians["boto3"]
    figures = [Figure(group, "bare `import boto3` handler", baseline * 1000, "ms", how)]
    for module in modules:
        seconds = medians[module]
        figures.append(
            Figure(
                group,
                module.removeprefix("parley_server.handlers."),
                seconds * 1000,
                "ms",
                f"{how}; {seconds / baseline:.1f}x boto3",
            )
        )
    return figures


def _uncompiled_and_compiled(
    prefix: str, how: str, layout: LambdaLayout, modules: list[str], repeats: int, python: str
) -> list[Figure]:
    """The asset as shipped without bytecode, then compiled as a deploy with Python 3.13
    compiles it (stacks/asset.py: unchecked-hash .pyc)."""
    figures = _import_figures(f"{prefix}cold start", how, layout, modules, repeats, python)
    compile_asset(layout, python)
    compiled_how = how.replace(
        "asset without bytecode", "asset compiled as a deploy with Python 3.13 compiles it"
    )
    figures += _import_figures(
        f"{prefix}compiled cold start", compiled_how, layout, modules, repeats, python
    )
    remove_bytecode(layout)
    return figures


def run(quick: bool = False) -> list[Figure]:
    repeats = 1 if quick else 7
    how = (
        f"median of {repeats} fresh interpreters, in rounds of boto3 and every handler,"
        " import only (by importlib, each from another stack depth), laid out as Lambda"
        " (asset without bytecode, tracer on)"
    )
    modules = sorted({spec.handler.rsplit(".", 1)[0] for spec in FUNCTIONS})
    with lambda_layout() as layout:
        # this machine's Python; compiled, it stands in for 3.13 where there is none
        figures = _uncompiled_and_compiled("", how, layout, modules, repeats, sys.executable)
        first_repeats = 1 if quick else 5
        for name, first in first_invocations(first_repeats, layout).items():
            figures.append(
                Figure(
                    "first invocation",
                    name,
                    first.total_s * 1000,
                    "ms",
                    f"median of {first_repeats} fresh interpreters, in rounds of every"
                    " handler, laid out as above: import"
                    f" {first.import_s * 1000:.0f} ms + first request"
                    f" {first.request_s * 1000:.0f} ms against moto on loopback;"
                    f" answered {_outcome(first.answer)}",
                )
            )
    # Lambda's own Python, where this machine has one: the asset's wheels for 3.13 (not
    # in the quick pass, which `make test` runs: tests/unit/bench checks that layout)
    lambda_python = None if quick else bytecode_python()
    if lambda_python is not None:
        with lambda_layout_for(lambda_python) as layout:
            figures += _uncompiled_and_compiled(
                "Python 3.13 ",
                how + f"; Python 3.13 ({lambda_python}), wheels for {platform.machine()}",
                layout,
                modules,
                repeats,
                lambda_python,
            )
    return figures


def _outcome(answer: str) -> str:
    """A short account of the first request's answer, for the table."""
    if answer.startswith("raised"):
        return answer[:80]
    status = re.search(r"'statusCode': (\d+)", answer)
    event = re.search(r'"(?:event|code)":"([a-z_]+)"', answer)
    if "'Effect': 'Allow'" in answer:
        return "an Allow policy"
    if "'batchItemFailures': []" in answer:
        return "no batch item failures"
    parts = [f"status {status.group(1)}" if status else answer[:60]]
    if event:
        parts.append(event.group(1))
    return " ".join(parts)


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
