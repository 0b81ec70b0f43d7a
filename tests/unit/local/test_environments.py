"""Lambda execution environments as processes (local/environments.py): started
on demand, reused while warm, one invocation at a time each, at most the limit
per function; a timed-out one is killed; each has its own module state; what a
handler does wrong is the FunctionError Lambda would report; IAM and faults hold
inside them as in the stack.

Each environment is a process, forked from a template that has imported the
libraries handlers use (local/template.py), so these tests start as few as they can.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from local import faults
from local.environments import Environments, Setup
from local.faults import FaultPlan, Faults
from local.iam.policy import Policy
from local.iam.template import FunctionPolicies
from local.lambdas import FunctionError, Invoker
from parley_server.catalogue import FunctionSpec

SPEC = FunctionSpec(
    id="Fn",
    handler="tests.unit.local.environment_handlers.handler",
    settings=frozenset(),
    description="",
)
MISSING = FunctionSpec(
    id="Missing", handler="tests.nowhere.handler", settings=frozenset(), description=""
)
ROOT = Path(__file__).resolve().parents[3]
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@asynccontextmanager
async def invoker(
    setup: Setup | None = None, functions: tuple[FunctionSpec, ...] = (SPEC, MISSING)
) -> AsyncIterator[Invoker]:
    """Environments (at most two per function unless `setup` says otherwise), in
    this test's event loop; stopped on exit."""
    fns = Invoker(
        Environments(setup or Setup(concurrency=2, environ=CREDENTIALS)), functions=functions
    )
    try:
        yield fns
    finally:
        await fns.close()


def _stats(invoker: Invoker) -> dict[str, int]:
    assert isinstance(invoker.handlers, Environments)
    return invoker.handlers.stats()["Fn"]


async def test_a_warm_environment_is_reused_with_its_module_state() -> None:
    async with invoker() as fn:
        first = await fn.invoke("Fn", {"a": (1, 2)})
        second = await fn.invoke("Fn", {"do": "print"})

        assert first["event"] == {"a": [1, 2]}  # JSON in: the tuple is a list
        assert first["function_name"] == "parley-local-Fn"
        assert 0 < first["remaining_ms"] <= SPEC.timeout_s * 1000
        assert second["pid"] == first["pid"]  # warm: the same process
        assert (first["invocations"], second["invocations"]) == (1, 2)  # its module state
        assert _stats(fn) == {"started": 1, "live": 1, "idle": 1, "waiting": 0}


async def test_concurrent_invocations_get_environments_of_their_own_up_to_the_limit() -> None:
    async with invoker() as fn:
        inside: list[tuple[int, asyncio.StreamWriter]] = []
        arrivals = {2: asyncio.Event(), 3: asyncio.Event()}

        async def arrived(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            inside.append((int(await reader.readline()), writer))
            if len(inside) in arrivals:
                arrivals[len(inside)].set()

        gate = await asyncio.start_server(arrived, "127.0.0.1", 0)
        port = gate.sockets[0].getsockname()[1]
        calls = [
            asyncio.ensure_future(fn.invoke("Fn", {"do": "gate", "port": port})) for _ in "abc"
        ]
        try:
            await asyncio.wait_for(arrivals[2].wait(), 30)
            # two environments (the limit) hold an invocation each; the third waits
            assert len({pid for pid, _ in inside}) == 2
            assert _stats(fn) == {"started": 2, "live": 2, "idle": 0, "waiting": 1}
            for _, writer in inside:
                writer.write(b"go")
            await asyncio.wait_for(arrivals[3].wait(), 30)  # in a warm environment
            inside[2][1].write(b"go")
            results = await asyncio.gather(*calls)
        finally:
            for _, writer in inside:
                writer.close()
            gate.close()
        assert {result["pid"] for result in results} == {pid for pid, _ in inside[:2]}
        assert inside[2][0] in {pid for pid, _ in inside[:2]}
        assert sorted(result["invocations"] for result in results) == [1, 1, 2]  # own state each
        assert _stats(fn)["started"] == 2


async def test_an_invocation_past_its_functions_timeout_kills_its_environment() -> None:
    quick = replace(SPEC, timeout_s=1)
    async with invoker(functions=(quick,)) as fn:
        warm = await fn.invoke("Fn", {})
        with pytest.raises(FunctionError) as failed:
            await fn.invoke("Fn", {"do": "hang"})
        assert failed.value.kind == "timeout"
        assert failed.value.message == "Task timed out after 1.00 seconds"
        after = await fn.invoke("Fn", {})

        assert after["pid"] != warm["pid"]  # a fresh environment: a cold start
        assert after["invocations"] == 1
        assert _stats(fn)["started"] == 2
    with pytest.raises(ProcessLookupError):  # killed, and reaped
        os.kill(warm["pid"], 0)


async def test_a_caller_that_stops_waiting_leaves_the_invocation_running() -> None:
    # API Gateway answers 504 after its 29 s; the Lambda invocation goes on
    inside: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def arrived(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        inside.put_nowait(writer)

    gate = await asyncio.start_server(arrived, "127.0.0.1", 0)
    port = gate.sockets[0].getsockname()[1]
    try:
        async with invoker(Setup(concurrency=1, environ=CREDENTIALS)) as fn:
            warm = await fn.invoke("Fn", {})
            call = asyncio.ensure_future(fn.invoke("Fn", {"do": "gate", "port": port}, limit_s=0.5))
            writer = await asyncio.wait_for(inside.get(), 30)
            with pytest.raises(FunctionError) as failed:
                await call
            assert failed.value.message == "Task timed out after 0.50 seconds"
            assert _stats(fn) == {"started": 1, "live": 1, "idle": 0, "waiting": 0}
            writer.write(b"go")  # the abandoned invocation ends, and frees its environment
            after = await fn.invoke("Fn", {})
            writer.close()
    finally:
        gate.close()
    assert (after["pid"], after["invocations"]) == (warm["pid"], 3)


@pytest.mark.parametrize(
    ("event", "kind", "message"),
    [
        ({"do": "raise"}, "unhandled", "Unauthorized"),
        ({"do": "decimal"}, "serialization", "Object of type Decimal is not JSON serializable"),
        ({"do": "huge"}, "payload", "response too large"),
    ],
)
async def test_what_a_handler_does_wrong_is_the_error_lambda_reports(
    event: dict[str, Any], kind: str, message: str
) -> None:
    async with invoker() as fn:
        with pytest.raises(FunctionError) as failed:
            await fn.invoke("Fn", event)
        assert (failed.value.kind, failed.value.message) == (kind, message)
        again = await fn.invoke("Fn", {})  # the environment lives on, as on Lambda
        assert again["invocations"] == 2


async def test_a_handler_that_does_not_import_is_an_import_error_every_time() -> None:
    async with invoker() as fn:
        for _ in range(2):
            with pytest.raises(FunctionError) as failed:
                await fn.invoke("Missing", {})
            assert failed.value.kind == "import"
            assert "No module named 'tests.nowhere'" in failed.value.message
        assert isinstance(fn.handlers, Environments)
        assert fn.handlers.stats()["Missing"]["live"] == 0


async def test_an_iam_denial_in_an_environment_is_the_error_aws_gives_and_is_recorded(
    tmp_path: Path,
) -> None:
    nothing = FunctionPolicies(
        policies={"Fn": Policy(())},
        region="us-east-1",
        account_id="123456789012",
        connections_api_arn="arn:aws:execute-api:us-east-1:123456789012:api/local",
    )
    record = tmp_path / "iam-record.jsonl"
    setup = Setup(policies=nothing, iam_record=record, environ=CREDENTIALS)
    async with invoker(setup) as fns:
        answer = await fns.invoke("Fn", {"do": "dynamodb"})

    assert answer["code"] == "AccessDeniedException"
    assert "parley-local-Fn is not authorized to perform: dynamodb:GetItem" in answer["message"]
    (denied,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert (denied["kind"], denied["function_id"], denied["action"]) == (
        "denied",
        "Fn",
        "dynamodb:GetItem",
    )


async def test_faults_are_injected_in_environments_and_counted_by_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "faults.json"
    # the stack's own faults keep the report; the environment's come from the variable
    monkeypatch.setattr(faults, "_STATE", {"faults": Faults(FaultPlan(report=report))})
    plan = json.dumps({"throttle": 1.0, "report": str(report)})
    async with invoker(Setup(environ={**CREDENTIALS, faults.ENV: plan})) as fns:
        answer = await fns.invoke("Fn", {"do": "dynamodb"})

    assert answer["code"] in ("ThrottlingException", "ProvisionedThroughputExceededException")
    assert json.loads(report.read_text()) == {"throttle": 1, "throttle:Fn": 1}


async def test_an_environment_has_exactly_the_variables_the_stack_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the template it is forked from has the variables this process had when the
    # template started; the environment has this process's now, then its function's
    async with invoker() as fn:
        await fn.invoke("Fn", {})  # the template is running
        monkeypatch.setenv("PARLEY_TEST_NEW", "set since")
        monkeypatch.delenv("HOME", raising=False)
        setup = Setup(environ={**CREDENTIALS, "PARLEY_TEST_FN": "the function's"})
        async with invoker(setup) as other:
            seen = await other.invoke("Fn", {"do": "environ"})
    root = str(ROOT)
    python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    assert seen["environ"] == {**os.environ, **setup.environ, "PYTHONPATH": python_path}
    assert seen["cwd"] == root  # the repository, whatever this process's is


def _printed_by(probe: str, **environ: str) -> str:
    """What a fresh interpreter running `probe` prints (this process's variables, the
    test credentials and `environ`)."""
    return subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **CREDENTIALS, **environ},
    ).stdout


def test_the_template_has_imported_every_library_a_handler_imports() -> None:
    # an environment's cold start then imports only the service's own code; a handler
    # that starts using a library the template lacks fails here (add it to PRELOADED)
    probe = (
        "import importlib, pkgutil, sys\n"
        "import local.template\n"
        "import parley_server.handlers as handlers\n"
        "before = set(sys.modules)\n"
        "for found in pkgutil.iter_modules(handlers.__path__):\n"
        "    importlib.import_module('parley_server.handlers.' + found.name)\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    loaded = _printed_by(probe, POWERTOOLS_TRACE_DISABLED="true").split()
    assert len(loaded) > 10  # every handler module, at least
    assert [name for name in loaded if not name.startswith("parley_server")] == []


def _template_services() -> tuple[str, ...]:
    # read, not imported: importing the template here would change botocore in this
    # test process for every test after
    tree = ast.parse((ROOT / "local" / "template.py").read_text())
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "AWS_SERVICES"
            for target in statement.targets
        ):
            services: tuple[str, ...] = ast.literal_eval(statement.value)
            return services
    raise AssertionError("local/template.py has no AWS_SERVICES")


def test_the_template_reads_the_data_of_every_service_a_handler_makes_a_client_for() -> None:
    # a service missing from AWS_SERVICES still works, its clients made at each cold
    # start from files: this keeps the list whole
    made: set[str] = set()
    for source in (ROOT / "lambdas" / "parley_server").rglob("*.py"):
        text = source.read_text()
        made.update(re.findall(r'\bclient\(\s*"([a-z0-9-]+)"', text))
        if re.search(r"\bs3_client\(", text):
            made.add("s3")
    assert "dynamodb" in made  # the search finds what it looks for
    assert made == set(_template_services())


def test_clients_made_after_the_template_read_no_botocore_file() -> None:
    # the template has read botocore's data; a session of an environment's own then
    # makes every client a handler makes without opening a file, and they work
    probe = (
        "import boto3, botocore.loaders as loaders\n"
        "import local.template as template\n"
        "read = []\n"
        "original = loaders.JSONFileLoader._load_file\n"
        "loaders.JSONFileLoader._load_file = lambda self, path, how: read.append(path)"
        " or original(self, path, how)\n"
        "session = boto3.session.Session()\n"
        "clients = {s: session.client(s, endpoint_url='http://127.0.0.1:9')"
        " for s in template.AWS_SERVICES}\n"
        "query = clients['dynamodb'].meta.service_model.operation_model('Query')\n"
        "print(len(read), query.name)\n"
    )
    assert _printed_by(probe).split() == ["0", "Query"]
