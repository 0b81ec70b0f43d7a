"""Shared fixtures: AWS (moto, in-process) built from the same table specs as the
CDK stack, and an invoker that runs a handler with exactly the environment the
stack gives its function (so a handler that reads an undeclared setting fails)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto import mock_aws

from local import moto_speedups
from local.iam import enforce
from local.iam.template import load_snapshot, resolve
from parley_server.catalogue import Setting, function
from parley_server.config import reset_config
from parley_server.store.aws import reset_clients
from parley_server.store.schema import TABLES, create_table_kwargs
from tests.reliability.figures import FIGURES

REGION = "us-east-1"
# Every boto3 call a handler makes is judged against its function's synthesized
# IAM policy (local/iam); installed before any boto3 session exists.
enforce.install()
# In-process moto is the local stack's (local/moto_speedups.py: a Query reads only
# its partition, expressions are parsed once, answers are written without moto's
# search for each member's name; each change is checked against moto's own answers in
# tests/unit/local/test_moto_speedups.py). moto as it comes sorts a whole table for
# every Query, so a test that grows a table paid for it at every read.
moto_speedups.apply()
TEST_NUMBER = "+12065550100"  # the `aws` fixture's one test number
AWS_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_SERVICE_NAME": "parley",
    "POWERTOOLS_METRICS_NAMESPACE": "Parley",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
}


@dataclass
class FakeAws:
    """Resources created in moto, and the settings that name them."""

    settings: dict[Setting, str] = field(default_factory=dict)
    boto: Any = None  # a boto3 session, for tests that inspect resources

    def env_for(self, function_id: str) -> dict[str, str]:
        """Exactly the environment the CDK stack gives `function_id`."""
        spec = function(function_id)
        env = dict(AWS_ENV)
        for setting in spec.settings:
            env[setting.value] = self.settings[setting]
        return env

    def client(self, service: str) -> Any:
        """A new client (a test may hook its events)."""
        return self.boto.client(service, region_name=REGION)


@functools.cache
def _session() -> Any:
    """One boto3 session for every test of the process: a fresh one per test loads
    the endpoint rules and service models again, which was most of a test's set-up.
    moto's stub is a botocore handler, so clients of any session are mocked."""
    import boto3

    return boto3.session.Session()


@functools.cache
def _client(service: str) -> Any:
    """The `aws` fixture's own clients, one per service for every test of the process
    (17 ms each to make). moto's stub is a handler of every botocore client, active
    while a mock is, so a client made under one test's mock serves the next one's."""
    return _session().client(service, region_name=REGION)


@functools.cache
def _policies() -> dict[str, Any]:
    return load_snapshot()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    """Every table, the bucket and the signing secret, in moto (in-process)."""
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        reset_clients(keep_session=True)
        reset_config()
        session = _session()
        fake = FakeAws(boto=session)
        ddb = _client("dynamodb")
        for spec in TABLES:
            name = f"parley-test-{spec.id.lower()}"
            ddb.create_table(**create_table_kwargs(spec, name))
            if spec.ttl_attribute:
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
                )
            fake.settings[spec.setting] = name
        s3 = _client("s3")
        s3.create_bucket(Bucket="parley-test-media")
        fake.settings[Setting.MEDIA_BUCKET] = "parley-test-media"
        secret = _client("secretsmanager").create_secret(
            Name="parley-test-signing", SecretString="k" * 64
        )
        fake.settings[Setting.SIGNING_SECRET_ARN] = secret["ARN"]
        fake.settings[Setting.WS_ENDPOINT] = "https://ws.local.test/test"
        fake.settings[Setting.PUSH_APPS] = "{}"
        fake.settings[Setting.LIMITS] = "{}"
        fake.settings[Setting.SMS_ORIGINATION] = "{}"
        # one test number (code derived from the secret, never texted): see logic/testnumbers.py
        fake.settings[Setting.TEST_NUMBERS] = json.dumps([TEST_NUMBER])
        # moto has no Kinesis Video signalling channels: the local stack's relays (none)
        fake.settings[Setting.CALL_RELAYS] = "loopback"
        fake.settings[Setting.CALL_CHANNELS] = "[]"
        fanout = _client("sqs").create_queue(
            QueueName="parley-test-fanout.fifo", Attributes={"FifoQueue": "true"}
        )
        fake.settings[Setting.GROUP_FANOUT_QUEUE] = fanout["QueueUrl"]
        enforce.configure(resolve(_policies(), fake.settings, region=REGION))
        try:
            yield fake
        finally:
            enforce.configure(None)
        reset_clients(keep_session=True)
        reset_config()


@pytest.fixture
def function_env(aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Call with a function id to give the process exactly that function's environment."""

    def use(function_id: str) -> dict[str, str]:
        env = aws.env_for(function_id)
        for setting in Setting:
            monkeypatch.delenv(setting.value, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_config()
        return dict(os.environ)

    return use


@pytest.fixture(scope="session", autouse=True)
def _no_developer_local_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test may touch the developer's ~/.parley/local-state: a local stack started
    other than through local.testing (which gives each its own) gets a throwaway one."""
    previous = os.environ.get("PARLEY_LOCAL_STATE")
    os.environ["PARLEY_LOCAL_STATE"] = str(tmp_path_factory.mktemp("local-state"))
    yield
    if previous is None:
        os.environ.pop("PARLEY_LOCAL_STATE", None)
    else:
        os.environ["PARLEY_LOCAL_STATE"] = previous


# ---------------------------------------------------------------------------
# CDK synthesis (infra). Synth starts Node and takes seconds, so it runs once
# per session, and only when a test asks for it; aws_cdk is imported lazily
# so sessions that never synthesize never pay for it.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cdk_synthesis(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app synthesized with the default context (tests.infra.synthesis.Synthesis)."""
    from tests.infra.synthesis import synthesize

    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def synth_template(cdk_synthesis: Any) -> dict[str, Any]:
    """The synthesized CloudFormation template of the Parley stack, as a dict."""
    template: dict[str, Any] = cdk_synthesis.template
    return template


# ---------------------------------------------------------------------------
# IAM, session-wide: every call any function made (in this process, and in every
# local stack the session started, which record to a file) was allowed.
# ---------------------------------------------------------------------------


def _iam_record() -> enforce.Recorder:
    from local.testing import IAM_RECORDS

    for path in IAM_RECORDS:
        enforce.RECORD.merge_file(path)
    IAM_RECORDS.clear()
    return enforce.RECORD


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    record = _iam_record()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a worker: the controller judges and prints
        workeroutput["parley"] = json.dumps(
            {"iam": record.lines(), "figures": FIGURES.dump(), "shared": sorted(_STARTED)}
        )
    if record.denials or _split_groups():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    _print_figures(terminalreporter)
    _print_iam(terminalreporter)
    for group, workers in _split_groups().items():
        terminalreporter.section("workers", red=True)
        terminalreporter.write_line(
            f"{group}: set up on {len(workers)} workers ({', '.join(workers)}), not one:"
            " pytest-xdist's loadgroup did not keep its tests together"
            " (see requirements-dev.txt)"
        )


def _print_figures(terminalreporter: Any) -> None:
    """The figures the reliability suites measured (cases run, messages, faults...)."""
    lines = FIGURES.lines()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


def _print_iam(terminalreporter: Any) -> None:
    from local.iam.report import unused_grants

    record = _iam_record()
    if not record.calls and not record.used and not record.denials:
        return
    write = terminalreporter.write_line
    if record.denials:
        terminalreporter.section("IAM: calls AWS would refuse", red=True)
        for denial in dict.fromkeys(record.denials):
            write(f"  {denial.describe()}")
        write(
            "  Grant what is missing in stacks/grants.py (or the stack), then "
            "`make iam-policies`; local/iam/policies.json is what is enforced."
        )
    unused = unused_grants(_policies(), record.used)
    count = sum(len(grants) for grants in unused.values())
    write(
        f"IAM: {len(record.denials)} calls refused; {count} granted permissions "
        "no test used" + ("" if os.environ.get("PARLEY_IAM_REPORT") else " (make iam-report)")
    )
    if os.environ.get("PARLEY_IAM_REPORT"):
        for function_id, grants in unused.items():
            write(f"  {function_id}:")
            for grant in grants:
                write(f"    {grant}")


# ---------------------------------------------------------------------------
# Parallel runs (pytest-xdist: `make test` runs three workers). The tests that share
# a session's costly thing (the e2e local stack, a CDK synthesis, the reliability
# suites' stack) go to one worker, so it is made once a session; every other module
# runs whole on one worker (its module fixtures once). What a worker recorded (IAM
# decisions, reliability figures) comes back to the controller, which judges the
# session on all of it and prints it.
# ---------------------------------------------------------------------------

_SHARED = {  # session fixture -> the one worker group of every test that uses it
    "local_stack": "e2e-stack",
    "cdk_synthesis": "cdk",
    "synth_template": "cdk",
    "prod_synthesis": "cdk",
    "stack": "reliability-stack",
}


# The groups that take longest, in that order (`--durations` of make test: the
# CI-size chaos run about 2 minutes, then the e2e and reliability stacks' tests);
# every other group follows in collection order.
_LONGEST_FIRST = {
    group: rank
    for rank, group in enumerate(
        (
            "tests/reliability/test_chaos_delivery.py",
            "e2e-stack",
            "reliability-stack",
            "tests/unit/bench/test_bench.py",
            "cdk",
        )
    )
}


# Each worker names the shared groups of the tests it ran; the controller checks that each
# group ran on one worker only (a second sets up the costly thing again: minutes).
_STARTED: set[str] = set()
_STARTED_ON: dict[str, set[str]] = {}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name in getattr(item, "fixturenames", ()):
        if name in _SHARED:
            _STARTED.add(_SHARED[name])


def _split_groups() -> dict[str, list[str]]:
    return {group: sorted(workers) for group, workers in _STARTED_ON.items() if len(workers) > 1}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Workers collect; pytest-xdist runs each with `dist` "no" and `loadgroup` set, and
    # groups the items by their xdist_group mark after this hook has added it.
    if not getattr(config.option, "loadgroup", False):
        return
    # a test that uses two shared things (the e2e stack and a synthesis) joins their
    # groups: both must be set up on the worker it runs on
    joined = {group: group for group in _SHARED.values()}
    for item in items:
        used = sorted(
            {_SHARED[n] for n in getattr(item, "fixturenames", ()) if n in _SHARED},
            key=lambda group: _LONGEST_FIRST.get(group, len(_LONGEST_FIRST)),
        )
        for group in used[1:]:
            joined[_root(joined, group)] = _root(joined, used[0])
    groups: dict[pytest.Item, str] = {}
    for item in items:
        names = getattr(item, "fixturenames", ())
        shared = next((group for name, group in _SHARED.items() if name in names), None)
        groups[item] = _root(joined, shared) if shared else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(groups[item]))
    # Longest first: a worker takes the next group when it is done with one, so a long
    # group handed out last would leave the other worker idle for its whole length.
    items.sort(key=lambda item: _LONGEST_FIRST.get(groups[item], len(_LONGEST_FIRST)))


def _root(joined: dict[str, str], group: str) -> str:
    while joined[group] != group:
        group = joined[group]
    return group


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A worker is done: take in what it recorded."""
    output = getattr(node, "workeroutput", {}).get("parley")
    if output is None:
        return
    recorded = json.loads(output)
    enforce.RECORD.merge_lines(recorded["iam"])
    FIGURES.merge(recorded["figures"])
    for group in recorded["shared"]:
        _STARTED_ON.setdefault(group, set()).add(str(node.gateway.id))
